"""Parse each completion exactly once; every reward component reads the resulting `Parsed`.

Contract: `parse_completion(text) -> Parsed` never raises and runs in time linear in len(text).
It knows nothing of tasks, schemas or weights.

What is extracted (the rules the components and eval rely on)
--------------------------------------------------------------
1. Think blocks. Every closed `<think>…</think>` is cut out of the *answer region*. A `</think>` with
   no opening tag before it (the chat template prefilled `<think>`) closes a block that starts at the
   beginning of the text. An unclosed `<think>` turns everything after it into thinking: the model
   never left its reasoning, so there is no answer. `think` is the content of the first block.
2. Fences. In the answer region, "```" markers are paired left to right; an opening marker may carry
   an info string on its line (```json, ```JSON, ```python). A pair whose content is only whitespace
   is *not* a block: its closing marker is re-read as an opening marker. This is the fix for the
   seed's "first empty fence" collapse (study 9.3): "```json\\n```json\\n{…}\\n```" yields `{…}`.
3. The candidate JSON text, by priority, the first match wins:
   a. the first non-empty closed block tagged `json` (any case)            -> source "json_fence"
   b. else the first non-empty closed untagged block                       -> source "fence"
   c. else the first non-empty closed block with another tag (```python)   -> source "other_fence"
   d. else the text after an opening marker that is never closed            -> source "unclosed_fence"
      (a completion cut mid-block still earns graduated validity)
   e. else, if the stripped answer region starts with `{` or `[`, all of it -> source "bare"
      (trailing prose then fails the parse: bare JSON must be the whole answer)
   f. else nothing                                                          -> source "none"
   "First", not "first that parses": spraying several attempts must not buy a second chance.
   Extraction is lenient about where a marker sits; *format* credit is not: `fence_on_own_line`
   says whether the extracted block opens as a Markdown fence does (the marker starts its line, the
   info string ends it). An echoed instruction such as "start with ```json on its own line, then
   the JSON, then ```" pairs two mid-line markers into a "block": it is extracted (and fails to
   parse) but earns no format credit.
4. Parsing. One `json.loads` of the stripped candidate, held to I-JSON (RFC 7493), the profile of
   RFC 8259 that all parsers read alike. A strict judge needs it: where parsers disagree, no value
   is "the" document. json.loads accepts these; the parse rejects them (ok False, no error offset):
   - NaN, Infinity, or a float beyond a double (1e999, which Python makes inf)
                                                              -> "non_finite_number" (RFC 7493 §2.2)
   - a member name twice in one object, at any depth          -> "duplicate_key" (§2.3: Python keeps
     the last value, other parsers the first, some fail)
   - a lone surrogate in a string or member name ("\\ud800")  -> "lone_surrogate" (§2.1: not Unicode,
     so no UTF-8 validator, jsonschema-rs included, can read it)
   RecursionError (deep nesting) is caught and reported as "too_deep".
5. Output modes (`output`, the run's `prompt.output`). "fenced" (default) is rules 1-4. "bare" asks
   for the JSON value alone, as JSON-mode and API clients read it (`json.loads` of the whole reply):
   the candidate is the whole stripped answer region                      -> source "bare"
   (any JSON value: an object, an array, a string, a number ...), and when that does not parse and
   does not open with `{` or `[` it is prose, not JSON                    -> source "none".
   A reply that opens with a fence marker anyway goes through rules 2-3 (-> json_fence, ...): its
   content still parses, so validity and schema credit stay dense for a model with a fenced prior,
   but format credit, strictness and strict pass read `source` and give a fenced reply none
   (rewards.components, rewards.score). Only a leading marker counts: "```" inside a string of a
   bare document is content.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
FENCE = "```"
OUTPUTS = ("fenced", "bare")   # rule 5
# an info string is a short tag directly after the opening marker, on the same line
_INFO_RE = re.compile(r"[ \t]*([A-Za-z0-9_+.\-]{0,20})[ \t]*(?:\r?\n)?")
# escapes first, then strings, are removed before counting brackets (truncation heuristic); two
# passes keep it linear: with escapes gone a failed '"[^"]*"' attempt means no quote is left
_ESCAPE_RE = re.compile(r"\\.", re.DOTALL)
_STRING_RE = re.compile(r'"[^"]*"')

# json.JSONDecodeError messages -> short error kinds (CPython's messages, Lib/json/decoder.py)
_ERROR_KINDS = (
    ("Expecting value", "expecting_value"),
    ("Expecting ',' delimiter", "expecting_delimiter"),
    ("Expecting ':' delimiter", "expecting_colon"),
    ("Expecting property name", "expecting_property_name"),
    ("Unterminated string", "unterminated_string"),
    ("Extra data", "extra_data"),
    ("Invalid control character", "invalid_control_character"),
    ("Invalid \\escape", "invalid_escape"),
    ("Invalid \\uXXXX escape", "invalid_escape"),
)


# a surrogate code point, raw or as an escape: only then are the parsed strings searched for one
_SURROGATE_HINT_RE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class _NotIJson(ValueError):
    """json.loads accepts the text, I-JSON does not (rule 4); `kind` is the error kind."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def _reject_constant(name: str) -> Any:
    raise _NotIJson("non_finite_number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotIJson("non_finite_number")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        raise _NotIJson("duplicate_key")
    return obj


def _has_lone_surrogate(value: Any) -> bool:
    """Any string or member name of a parsed value holds a surrogate code point (iterative: any depth)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE_RE.search(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


@dataclass(frozen=True)
class Block:
    """One closed fenced block of the answer region: [start, end) spans the markers too."""
    tag: str          # info string, lower-cased ("" when untagged)
    content: str      # raw text between the markers
    start: int
    end: int
    content_start: int  # where `content` begins: after the opening marker and its info string


@dataclass(frozen=True)
class Parsed:
    text: str                       # the completion as given
    answer: str                     # text with think blocks removed (the answer region)
    think: str | None               # content of the first think block, None when there is none
    think_closed: bool              # False when a <think> is never closed
    blocks: tuple[Block, ...]       # closed, non-empty fenced blocks of the answer region
    unclosed_fence: bool            # an opening marker in the answer region has no closing marker
    source: str                     # json_fence | fence | other_fence | unclosed_fence | bare | none
    candidate: str | None           # the stripped JSON text that was parsed, None when source == none
    span: tuple[int, int] | None    # where the extracted text (markers included) sits in `answer`
    ok: bool                        # candidate parsed as JSON
    value: Any                      # the parsed value (None when not ok; JSON null is value None, ok True)
    error_kind: str | None          # short parse-error kind when not ok and a candidate exists
    error_pos: int | None           # char offset of the parse error in the candidate, if known
    looks_truncated: bool           # the candidate ends while a bracket/string is still open
    fence_on_own_line: bool         # the extracted block is a closed fence opened on its own line


def split_think(text: str) -> tuple[str, str | None, bool]:
    """Return (answer region, first think content, think closed?). Linear in len(text)."""
    first: str | None = None
    open_i, close_i = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    if close_i != -1 and (open_i == -1 or close_i < open_i):
        # prefilled "<think>": the completion starts inside the block
        first, text = text[:close_i], text[close_i + len(THINK_CLOSE):]
    parts, pos = [], 0
    while True:
        open_i = text.find(THINK_OPEN, pos)
        if open_i == -1:
            parts.append(text[pos:])
            return "".join(parts), first, True
        parts.append(text[pos:open_i])
        close_i = text.find(THINK_CLOSE, open_i + len(THINK_OPEN))
        inner_end = len(text) if close_i == -1 else close_i
        if first is None:
            first = text[open_i + len(THINK_OPEN):inner_end]
        if close_i == -1:  # never closed: the rest is thinking
            return "".join(parts), first, False
        pos = close_i + len(THINK_CLOSE)


def find_blocks(answer: str) -> tuple[list[Block], int | None]:
    """Pair fence markers (rule 2). Returns the non-empty closed blocks and the content start of a
    trailing unclosed opening marker (None when every opener is closed)."""
    marks, pos = [], answer.find(FENCE)
    while pos != -1:
        # a run of 4+ backticks is one marker; skip past it so it is not split into two
        end = pos + 3
        while end < len(answer) and answer[end] == "`":
            end += 1
        marks.append((pos, end))
        pos = answer.find(FENCE, end)
    blocks: list[Block] = []
    i, unclosed = 0, None
    while i < len(marks):
        open_at, open_end = marks[i]
        info = _INFO_RE.match(answer, open_end)
        tag, body_at = info.group(1).lower(), info.end()
        if i + 1 == len(marks):
            unclosed = body_at
            break
        close_at, close_end = marks[i + 1]
        content = answer[body_at:close_at] if body_at <= close_at else ""
        if content.strip():
            blocks.append(Block(tag, content, open_at, close_end, body_at))
            i += 2
        else:  # empty pair: the closing marker is really the next opening marker
            i += 1
    return blocks, unclosed


def opens_on_own_line(answer: str, block: Block) -> bool:
    """Markdown's rule for a fence opener: only blanks before the marker on its line, nothing after
    the info string (the info match then ended on the newline). Called once per completion (for the
    extracted block), so parsing stays linear."""
    line_start = answer.rfind("\n", 0, block.start) + 1
    return not answer[line_start:block.start].strip(" \t") and answer[block.content_start - 1] == "\n"


def _looks_truncated(candidate: str) -> bool:
    """Seed heuristic (study 4.2, truncation): open brackets, a dangling ',' or ':', or an odd quote."""
    stripped = _STRING_RE.sub("", _ESCAPE_RE.sub("", candidate))
    if '"' in stripped:  # a string that never closes
        return True
    if stripped.count("{") > stripped.count("}") or stripped.count("[") > stripped.count("]"):
        return True
    return candidate.rstrip()[-1:] in (",", ":")


def _parse_json(candidate: str) -> tuple[bool, Any, str | None, int | None]:
    try:
        value = json.loads(candidate, parse_constant=_reject_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_members)
        if _SURROGATE_HINT_RE.search(candidate) and _has_lone_surrogate(value):
            raise _NotIJson("lone_surrogate")
        return True, value, None, None
    except _NotIJson as e:
        return False, None, e.kind, None
    except json.JSONDecodeError as e:
        kind = next((k for prefix, k in _ERROR_KINDS if e.msg.startswith(prefix)), "other")
        # "Unterminated string" points at the string's start, but the decoder read to the end
        pos = len(candidate) if kind == "unterminated_string" else e.pos
        return False, None, kind, pos
    except RecursionError:
        return False, None, "too_deep", None
    except (ValueError, TypeError, MemoryError):
        return False, None, "other", None


def parse_completion(text: str, output: str = "fenced") -> Parsed:
    """Extract and parse the JSON answer of one completion (rules in the module docstring)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    answer, think, think_closed = split_think(text)
    if output == "bare" and not answer.lstrip().startswith(FENCE):
        return _parse_bare(text, answer, think, think_closed)
    blocks, unclosed_at = find_blocks(answer)

    chosen = (next((b for b in blocks if b.tag == "json"), None)
              or next((b for b in blocks if b.tag == ""), None)
              or next(iter(blocks), None))
    span: tuple[int, int] | None = None
    if chosen is not None:
        source = {"json": "json_fence", "": "fence"}.get(chosen.tag, "other_fence")
        candidate, span = chosen.content.strip(), (chosen.start, chosen.end)
    elif unclosed_at is not None and answer[unclosed_at:].strip():
        source, candidate, span = "unclosed_fence", answer[unclosed_at:].strip(), (unclosed_at, len(answer))
    elif answer.lstrip()[:1] in ("{", "["):
        source, candidate, span = "bare", answer.strip(), (0, len(answer))
    else:
        source, candidate = "none", None

    ok, value, error_kind, error_pos, truncated = False, None, None, None, False
    if candidate is not None:
        ok, value, error_kind, error_pos = _parse_json(candidate)
        truncated = not ok and (source == "unclosed_fence" or _looks_truncated(candidate))
    return Parsed(text=text, answer=answer, think=think, think_closed=think_closed,
                  blocks=tuple(blocks), unclosed_fence=unclosed_at is not None, source=source,
                  candidate=candidate, span=span, ok=ok, value=value, error_kind=error_kind,
                  error_pos=error_pos, looks_truncated=truncated,
                  fence_on_own_line=chosen is not None and opens_on_own_line(answer, chosen))


def _parse_bare(text: str, answer: str, think: str | None, think_closed: bool) -> Parsed:
    """Rule 5, bare output: the whole answer region is the candidate (no fence was opened)."""
    candidate = answer.strip()
    ok, value, error_kind, error_pos = _parse_json(candidate) if candidate else (False, None, None, None)
    if not ok and candidate[:1] not in ("{", "["):   # prose (or nothing): no JSON candidate at all
        return Parsed(text=text, answer=answer, think=think, think_closed=think_closed, blocks=(),
                      unclosed_fence=False, source="none", candidate=None, span=None, ok=False, value=None,
                      error_kind=None, error_pos=None, looks_truncated=False, fence_on_own_line=False)
    return Parsed(text=text, answer=answer, think=think, think_closed=think_closed, blocks=(),
                  unclosed_fence=False, source="bare", candidate=candidate, span=(0, len(answer)), ok=ok,
                  value=value, error_kind=error_kind, error_pos=error_pos,
                  looks_truncated=not ok and _looks_truncated(candidate), fence_on_own_line=False)
