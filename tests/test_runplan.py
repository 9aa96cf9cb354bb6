"""The run plan as a plain function of the options: no pytester, no pytest session."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from _pytest.config.argparsing import Parser

from ckptgate.errors import CkptgateError
from ckptgate.options import add_options
from ckptgate.runplan import RunPlan, plan_run


def options(*args: str) -> argparse.Namespace:
    parser = Parser(_ispytest=True)
    add_options(parser)
    return parser.parse(["--record-cache", "none", *args])


def test_no_checkpoint_is_no_plan() -> None:
    assert plan_run(options()) is None


def test_the_demo_plan(demo_root: Path) -> None:
    plan = plan_run(options("--checkpoint", str(demo_root / "step_0800"), "--limit", "3", "--alpha", "0.1"))
    assert plan is not None
    assert [c.label for c in plan.candidates] == ["step_0800"]
    assert [c.label for c in plan.bridges] == ["bridge"]  # the demo suite names its stage's bridge
    assert (plan.backend, plan.device, plan.limit, plan.alpha, plan.record_cache) == ("hf", "cpu", 3, 0.1, None)
    assert plan.weights.keys() == {"step_0800", "bridge"} and plan.tensor_parallel == 1


def test_the_plan_travels_to_workers_unchanged(demo_root: Path) -> None:
    plan = plan_run(options("--checkpoint", str(demo_root / "step_0800"), "--report-only"))
    assert plan is not None
    back = RunPlan.from_wire(plan.to_wire())
    assert back.to_wire() == plan.to_wire()
    assert back.checkpoints == plan.checkpoints and back.suite.name == plan.suite.name


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--limit", "0"], "--limit must be a positive number"),
        (["--alpha", "1"], "--alpha must be between 0 and 1"),
        (["--suite", "qwen3"], "have nothing to be held against"),
        (["--bridge", "{step_0800}"], "appear more than once among --checkpoint, --bridge and --control"),
    ],
)
def test_bad_options_are_refused_before_any_model_loads(demo_root: Path, args: list[str], fragment: str) -> None:
    step_0800 = str(demo_root / "step_0800")
    with pytest.raises(CkptgateError, match=fragment):
        plan_run(options("--checkpoint", step_0800, *[a.format(step_0800=step_0800) for a in args]))
