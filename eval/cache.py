"""One baseline per (model, prompt set, decoding), generated once and reused by every comparison.

Contract: `BaselineCache(folder).get(key_fields)` returns the cached `Generated` or None, `put`
stores one atomically (temp file + rename). The key is a hash of the model (spec and resolved
path), the prompt set's content hash, the `Decoding` and the context length - everything that
changes the completions. Only raw completions are cached; they are re-scored with the current
reward code every time, so a reward fix never needs a re-generation. `--baseline` bypasses `get`.

Why: the seed re-ran its baseline inside each strategy's folder, so identical baselines differed by
3-6 points of sampling noise (seed-repo-study 7.2) and every "gain" carried that noise twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from eval.records import Generated


def cache_key(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]


class BaselineCache:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, fields: dict[str, Any]) -> Path:
        return self.folder / f"{fields.get('set', 'set')}-{cache_key(fields)}.json"

    def get(self, fields: dict[str, Any]) -> Generated | None:
        path = self.path(fields)
        if not path.is_file():
            return None
        try:
            return Generated.from_dict(json.loads(path.read_text())["generated"])
        except (OSError, ValueError, KeyError, TypeError):
            return None   # a damaged entry is regenerated, not trusted

    def put(self, fields: dict[str, Any], generated: Generated) -> Path:
        path = self.path(fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({"key": fields, "generated": generated.to_dict()}, f)
        os.chmod(tmp, 0o644)      # mkstemp makes it 0600; the cache is shared by whoever evaluates
        os.replace(tmp, path)
        return path
