"""The baseline cache: one baseline per key, shard-by-shard so a killed run resumes (no model)."""
import pytest

import eval.run as run
from curriculum.json_tasks import generate_json_tasks
from eval.cache import BaselineCache
from eval.records import Completion, Decoding, Generated


class FakeGenerator:
    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def run(self, label, tasks, decoding, adapter=None):
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt("killed")
        self.calls.append([t.id for t in tasks])
        return Generated(label=label, task_ids=[t.id for t in tasks], wall_s=1.0,
                         completions=[[Completion(f"out {t.id}", 3, "stop")] for t in tasks])


def test_shards_are_cached_and_a_killed_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "SHARD_PROMPTS", 2)
    tasks = generate_json_tasks(5, seed=0, split="eval")
    plan = run.EvalPlan(cache_dir=str(tmp_path))
    cache, key = BaselineCache(tmp_path), {"set": "synthetic", "x": 1}
    killed = FakeGenerator(fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        run._cached_run(plan, lambda: killed, cache, "baseline", tasks, Decoding(), key)
    assert len(killed.calls) == 2, "two shards finished before the kill"
    resumed = FakeGenerator()
    gen, from_cache = run._cached_run(plan, lambda: resumed, cache, "baseline", tasks, Decoding(), key)
    assert resumed.calls == [[tasks[4].id]], "only the unfinished shard is generated again"
    assert gen.task_ids == [t.id for t in tasks] and gen.label == "baseline" and gen.wall_s == 3.0
    assert not from_cache
    again, from_cache = run._cached_run(plan, lambda: pytest.fail("no generation"), cache, "baseline", tasks,
                                        Decoding(), key)
    assert from_cache and again.task_ids == gen.task_ids
    forced = FakeGenerator()
    run._cached_run(run.EvalPlan(force_baseline=True), lambda: forced, cache, "baseline", tasks, Decoding(), key)
    assert len(forced.calls) == 3, "--baseline regenerates every shard"


def test_cache_key_changes_with_decoding(tmp_path):
    cache = BaselineCache(tmp_path)
    a = {"set": "s", "decoding": Decoding().to_dict()}
    b = {"set": "s", "decoding": Decoding(temperature=0.0).to_dict()}
    cache.put(a, Generated(label="baseline", task_ids=[], completions=[]))
    assert cache.get(a) is not None and cache.get(b) is None
    cache.path(a).write_text("{broken")
    assert cache.get(a) is None, "a damaged entry is regenerated, not trusted"


@pytest.mark.parametrize("native", [True, False])
def test_the_engine_dtype_keys_the_baseline_and_bf16_keys_stay_as_before(native, monkeypatch):
    import rollout.models as models
    monkeypatch.setattr(models, "native_bf16", lambda: native)
    tasks = generate_json_tasks(3, seed=0, split="eval")
    auto = run.baseline_key(run.EvalPlan(), "synthetic", tasks, Decoding())
    pinned = run.baseline_key(run.EvalPlan(dtype="bfloat16"), "synthetic", tasks, Decoding())
    fp32 = run.baseline_key(run.EvalPlan(dtype="float32"), "synthetic", tasks, Decoding())
    assert "dtype" not in pinned, "a bf16 key is the key every committed baseline was written under"
    assert fp32 == {**pinned, "dtype": "float32"}
    assert auto == (pinned if native else fp32), "auto: bf16 only where the machine has it natively"
