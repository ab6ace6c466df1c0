"""The canary's verdict (rollout.canary.toward) and the loop's redraw (grpo.train._canary) on synthetic
logprobs: no engine, so a heavy-tailed sample can be built on purpose."""
import json

import pytest
import torch

import rollout.canary as canary
from grpo.train import _canary
from rollout.canary import MAX_TOWARD, CanaryError, toward

SIZES = [32] * 8


def _logprobs(t_true: float, seed: int = 0, scale_first: float = 1.0):
    """policy p, candidate c = p + v, engine e = p + t_true v + bf16-like noise; the first completion's
    v scaled by `scale_first`."""
    g = torch.Generator().manual_seed(seed)
    p = -torch.rand(sum(SIZES), generator=g, dtype=torch.float64) * 3
    v = 0.05 * torch.randn(sum(SIZES), generator=g, dtype=torch.float64)
    v[:SIZES[0]] *= scale_first
    e = p + t_true * v + 0.03 * torch.randn(sum(SIZES), generator=g, dtype=torch.float64)
    return e, p, p + v


@pytest.mark.parametrize("t_true", [0.0, 0.5, 1.0])
def test_toward_recovers_where_the_engine_sits_within_three_se(t_true):
    for seed in range(5):
        t, se = toward(*_logprobs(t_true, seed), SIZES)
        assert abs(t - t_true) < 3 * se + 1e-9 and se < 0.2, (seed, t, se)


def test_a_delivered_engine_is_not_failed_by_one_dominating_completion():
    # The first completion carries ~99.9 % of |c - p|^2 and sits 0.44 of the way to c (what a rare token's
    # noise can look like); the other seven sit at p. The clustered sandwich se read ~0 here.
    e, p, c = _logprobs(0.0, scale_first=30.0)
    e[:SIZES[0]] = p[:SIZES[0]] + 0.44 * (c - p)[:SIZES[0]]
    t, se = toward(e, p, c, SIZES)
    assert t == pytest.approx(0.44, abs=0.01)
    assert not t - 3 * se > MAX_TOWARD, (t, se)


def test_a_stale_engine_still_fails_when_every_completion_agrees():
    t, se = toward(*_logprobs(1.0, seed=3), SIZES)
    assert t - 3 * se > MAX_TOWARD, (t, se)


def test_toward_without_a_second_completion_has_no_se():
    e, p, c = _logprobs(0.0)
    assert toward(e[:32], p[:32], c[:32], [32])[1] == float("inf")
    assert toward(e, p, p, SIZES) == (0.0, float("inf"))


def _fake_checks(monkeypatch, verdicts):
    calls = iter(verdicts)

    def check(engine, policy, prompt_ids, previous=None):
        reason = next(calls)
        return {"canary/toward_previous": 0.9 if reason else 0.0, "canary/delivered": float(not reason),
                "reason": reason, "evidence": {"prompt_ids": prompt_ids, "engine": [-1.0]}}
    monkeypatch.setattr(canary, "check_adapter", check)


def test_one_failed_draw_is_recorded_and_drawn_again(monkeypatch, tmp_path, capsys):
    _fake_checks(monkeypatch, ["engine sits 0.44 (+- 0.00) of the way", ""])
    metrics = _canary(object(), None, [1, 2, 3], None, 80, tmp_path)
    assert metrics["canary/delivered"] == 1.0 and metrics["canary/redrawn"] == 1.0
    record = json.loads((tmp_path / "canary" / "step_000080_draw1.json").read_text())
    assert record["reason"].startswith("engine sits 0.44") and record["prompt_ids"] == [1, 2, 3]
    assert "a second draw passed" in capsys.readouterr().out


def test_two_failed_draws_stop_the_run(monkeypatch, tmp_path):
    _fake_checks(monkeypatch, ["stale", "stale again"])
    with pytest.raises(CanaryError, match="stale.*second draw.*stale again"):
        _canary(object(), None, [1], None, 10, tmp_path)
    assert sorted(p.name for p in (tmp_path / "canary").iterdir()) == ["step_000010_draw1.json", "step_000010_draw2.json"]


def test_a_passing_canary_draws_once_and_writes_nothing(monkeypatch, tmp_path):
    _fake_checks(monkeypatch, [""])
    assert _canary(object(), None, [1], None, 10, tmp_path)["canary/redrawn"] == 0.0
    assert not (tmp_path / "canary").exists()
