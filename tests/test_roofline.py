"""scripts/roofline.py's limits are those of the dtype the trainer computes in on the machine."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import roofline  # noqa: E402

MEASURED = {"gemm": {"bf16": {"overall_GFLOPs": 400.0}, "fp32": {"overall_GFLOPs": 100.0}},
            "bandwidth": {"read_GBps": 20.0}}


def test_limits_use_the_dtypes_gemm_rate_and_element_size():
    bf16, fp32 = (roofline.phase_limits(MEASURED, roofline.default_workload(dtype=d)) for d in ("bf16", "fp32"))
    assert (bf16["dtype"], fp32["dtype"]) == ("bf16", "fp32")
    assert fp32["generate"]["weight_bytes"] == 2 * bf16["generate"]["weight_bytes"]
    assert fp32["generate"]["kv_bytes_per_token"] == 2 * bf16["generate"]["kv_bytes_per_token"]
    assert fp32["train"]["flops"] == bf16["train"]["flops"], "the same work in either dtype"
    assert fp32["train_s"] == pytest.approx(4 * bf16["train_s"]), "fp32's rate here is a quarter of bf16's"
    assert fp32["generate"]["memory_s"] == pytest.approx(2 * bf16["generate"]["memory_s"])


def test_default_dtype_is_the_one_auto_resolves_to_here():
    from rollout.models import resolve_dtype
    want = "bf16" if resolve_dtype("auto") == "bfloat16" else "fp32"
    assert roofline.default_workload()["dtype"] == want == roofline.machine_dtype()


def test_an_emulated_bf16_is_not_measured_unless_asked_for():
    native = roofline.machine_dtype() == "bf16"
    assert roofline.measured_dtypes() == (("bf16", "fp32") if native else ("fp32",))
    assert roofline.measured_dtypes("bf16") == ("bf16", "fp32")
    quick = roofline.measure(quick=True, dtypes=("fp32",))
    assert set(quick["gemm"]) == {"fp32"} and quick["bandwidth"]["read_GBps"] == quick["bandwidth"]["read_fp32_GBps"]
