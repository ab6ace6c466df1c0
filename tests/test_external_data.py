"""External benchmarks: loaders return well-formed evaluation tasks, and never reach training."""
import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from curriculum.external import (external_data_root, gsm8k_answer, is_external, load_gsm8k,
                                 load_jsonschemabench)
from curriculum.json_tasks import generate_json_tasks
from curriculum.linear_equations import generate_linear_tasks
from rewards import validate

ROOT = Path(__file__).resolve().parents[1]
needs_data = pytest.mark.skipif(not (external_data_root() / "gsm8k" / "test.jsonl").is_file(),
                                reason="../shared/external_data not present")


@needs_data
@pytest.mark.parametrize("subset", ["Glaiveai2K", "Github_easy"])
def test_jsonschemabench_tasks(subset):
    tasks = load_jsonschemabench(subset, limit=25, seed=0)
    assert len(tasks) == 25 and len({t.id for t in tasks}) == 25
    assert all(t.source == f"jsonschemabench/{subset}" and t.kind == "json" for t in tasks)
    assert all(isinstance(t.schema, dict) and "JSON Schema" in t.prompt for t in tasks)
    assert {t.tier for t in tasks} <= {"simple", "medium", "hard"}
    with_gold = [t for t in tasks if t.gold is not None]
    assert with_gold, "upstream valid instances become golds"
    ok = sum(validate(t.gold, t.schema)[0] for t in with_gold)
    assert ok >= 0.9 * len(with_gold), "upstream-valid golds validate with our validator (a few format disagreements allowed)"
    assert load_jsonschemabench(subset, limit=25, seed=0) == tasks, "same arguments, same tasks"
    assert load_jsonschemabench(subset, limit=25, seed=1) != tasks, "the seed picks the subset"


@needs_data
def test_gsm8k_tasks():
    tasks = load_gsm8k(limit=40, seed=0)
    assert len(tasks) == 40 and all(t.source == "gsm8k" and t.kind == "math" for t in tasks)
    assert all(t.answer and "," not in t.answer and "####" in t.gold for t in tasks)
    assert gsm8k_answer("so 1000 in all\n#### 1,000") == "1000"


def test_data_root_override(tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_EXTERNAL_DATA", str(tmp_path))
    assert external_data_root() == tmp_path
    with pytest.raises(FileNotFoundError, match="GRPO_EXTERNAL_DATA"):
        load_gsm8k(limit=1)


def test_training_generators_never_return_external_tasks():
    for seed in range(3):
        tasks = generate_json_tasks(60, seed, "train") + generate_linear_tasks(30, seed, "train")
        assert not any(is_external(t) for t in tasks), "training data must never carry an external source"
        assert {t.source for t in tasks} == {"synthetic"}


def test_trainer_task_source_uses_only_the_synthetic_generators():
    from grpo.tasks import build_task_source
    for kind, share in (("json", 0.0), ("json", 0.4), ("math", 0.0)):   # 0.4 + 0.4: the three JSON task families
        cfg = SimpleNamespace(kind=kind, num_tasks=40, seed=0, tier_mix=None, schema_prompt_share=share,
                              generated_share=share)
        source = build_task_source(cfg, seed=0)
        assert not any(is_external(t) for t in source.tasks), f"{kind} training pool holds an external task"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_no_training_code_imports_the_external_loaders():
    training = list((ROOT / "grpo").glob("*.py")) + list((ROOT / "curriculum" / "templates").glob("*.py")) + [
        ROOT / "curriculum" / f for f in ("json_tasks.py", "linear_equations.py", "prompts.py", "mutations.py")]
    offenders = [p.name for p in training if p.is_file() and any("external" in m for m in _imports(p))]
    assert not offenders, f"training code imports curriculum.external: {offenders}"


def test_eval_never_imports_grpo():
    offenders = [p.name for p in (ROOT / "eval").glob("*.py") if any(m.split(".")[0] == "grpo" for m in _imports(p))]
    assert not offenders, f"eval/ must not import grpo internals: {offenders}"
