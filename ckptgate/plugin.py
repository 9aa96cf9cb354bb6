"""The pytest plugin: pytest's hooks and the gate's fixtures, each a few lines into the modules
that do the work.

Flow: ``pytest_configure`` resolves the run plan on the controller (:mod:`ckptgate.runplan`; bad
input is a usage error, exit code 4, before any model loads) and ships it to xdist workers.
Collection parametrizes each ``@pytest.mark.gate(name)`` test over the suite's benchmarks x the
checkpoints and groups items by checkpoint (:mod:`ckptgate.collection`). Each test's fixture
runs its benchmark and writes its record (:mod:`ckptgate.benchmark_run`), and the test asserts
the verdict. The controller gathers the workers' rows and settles the run
(:mod:`ckptgate.settling`), then prints it (:mod:`ckptgate.terminal`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ckptgate import benchmark_run as runs
from ckptgate import collection, devices, exitcodes, gate, invocation, options, scheduling, settling, terminal, workers
from ckptgate.backends import ModelPool
from ckptgate.benchmark_run import INCONCLUSIVE_WORD, BenchmarkRun
from ckptgate.collection import Case
from ckptgate.errors import CkptgateError, InfrastructureError
from ckptgate.evaluation import Evaluator
from ckptgate.runplan import (RunPlan, evaluated, fully_cached, load_spec, plan_run, record_cache, suite_scorer,
                              without)
from ckptgate.runstate import RunState

__all__ = ["BenchmarkRun", "Case"]

WIRE_KEY = "ckptgate"
_STATE = pytest.StashKey[RunState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    invocation.aim_at_gate(early_config, args)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gate(name): run the suite's benchmarks whose `test` is NAME over every checkpoint."
    )
    on_worker = workers.is_worker(config)
    try:
        plan = _worker_plan(config) if on_worker else plan_run(
            config.option, workers=workers.worker_count(config), collect_only=config.option.collectonly,
            progress=workers.capture_disabled(config))
        left_out: list[str] = []
        if plan is not None and not on_worker and config.option.ckptgate_new_only:
            plan, left_out = _new_only(plan)
        in_process = plan is not None and not on_worker and _all_cached(config, plan)
        if plan is not None and not on_worker:
            workers.pin_main_process(config, plan)
    except InfrastructureError as exc:
        pytest.exit(f"ckptgate: infrastructure failure (the machine, not the input; exit code {exitcodes.INFRA}): "
                    f"{exc}", returncode=exitcodes.INFRA)
    except CkptgateError as exc:
        raise pytest.UsageError(str(exc)) from None
    if plan is None:
        return
    state = RunState(plan, worker=workers.worker_id(config))
    config.stash[_STATE] = state
    state.notes.extend(left_out)
    if in_process:
        state.notes.append("every result is in the record cache: no model loads, no workers started")
    for tag in sorted(plan.suite.tags()):
        config.addinivalue_line("markers", f"{tag}: benchmarks tagged '{tag}' in the suite.")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(state), "ckptgate-xdist")
    if plan.shard is not None:
        config.pluginmanager.register(_ShardCut(plan), "ckptgate-shard")
    if on_worker:
        # Workers re-parse the command line, so they do not see the controller's switch to
        # loadgroup; xdist's worker adds the "@group" suffix that groups items only with this set.
        config.option.loadgroup = True
    else:
        workers.force_loadgroup(config)


def _new_only(plan: RunPlan) -> tuple[RunPlan, list[str]]:
    """--new-only: the plan without the candidates already evaluated (and a note naming them);
    exit 0 when none is left."""
    done = evaluated(plan)
    if done and len(done) == len(plan.candidates):
        pytest.exit(f"ckptgate: --new-only: all {len(done)} checkpoint(s) already evaluated for suite "
                    f"{plan.suite.name!r} with these settings ({', '.join(c.label for c in done)}): nothing to do",
                    returncode=exitcodes.GO)
    note = f"--new-only: {len(done)} checkpoint(s) already evaluated, left out: {', '.join(c.label for c in done)}"
    return without(plan, done), [note] if done else []


def _all_cached(config: pytest.Config, plan: RunPlan) -> bool:
    """With every result cached, xdist's workers would only import and read files: run in this
    process instead (switched before xdist's own configure hook, which then starts none)."""
    if workers.worker_count(config) == 1 or config.option.collectonly or not fully_cached(plan):
        return False
    workers.run_in_this_process(config)
    return True


def _worker_plan(config: pytest.Config) -> RunPlan | None:
    wire = config.workerinput.get(WIRE_KEY)  # type: ignore[attr-defined]
    return None if wire is None else RunPlan.from_wire(wire)


def _plan(config: pytest.Config) -> RunPlan | None:
    state = config.stash.get(_STATE, None)
    return None if state is None else state.plan


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(_STATE, None)
    return None if state is None else terminal.header(state.plan, state.notes)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    collection.parametrize(metafunc, _plan(metafunc.config))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    collection.arrange(session, items, _plan(config), workers=workers.worker_count(config),
                       on_worker=workers.is_worker(config))


@pytest.fixture(scope="session")
def evaluator(pytestconfig: pytest.Config) -> Iterator[Evaluator]:
    state = pytestconfig.stash[_STATE]
    plan = state.plan
    spec = load_spec(plan, workers.worker_count(pytestconfig))
    pool = ModelPool(spec)
    scorer = suite_scorer(plan.suite, plan.datasets)
    yield Evaluator(pool, scorer, plan.suite, plan.limit, record_cache(plan, spec, scorer))
    pool.close(collect=False)  # the session is over: the process exits next
    state.loads.update(pool.loads)


@pytest.fixture
def benchmark_run(benchmark_case: Case, evaluator: Evaluator, request: pytest.FixtureRequest) -> BenchmarkRun:
    state = request.config.stash[_STATE]
    session, group = request.session, request.node.stash[collection.GROUP]
    state.groups_by_worker.setdefault(state.worker, set()).add(group)
    return runs.run(state, evaluator, benchmark_case, lambda: collection.planned(session, group),
                    _policy(state, session))


def _policy(state: RunState, session: pytest.Session) -> gate.Policy:
    if state.family_size is None:
        state.family_size = collection.family_size(state.plan, session)
    return gate.Policy(alpha=state.plan.alpha, family_size=state.family_size)


class _ShardCut:
    """``--shard``: registered only then, so its hook can run after -k and -m (trylast)."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        collection.cut_shard(session, items, self.plan)


class _XdistHooks:
    """Ship the plan to workers; gather their rows and grouping evidence back."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WIRE_KEY] = self.state.plan.to_wire()

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """loadgroup, with each checkpoint's work groups handed out longest first."""
        if getattr(config.option, "dist", "no") != "loadgroup":
            return None
        return scheduling.CheckpointScheduling(config, log, self.state.plan.weights)

    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        """Give each worker its environment at start-up, before it can initialise CUDA: its own
        GPU (CUDA_VISIBLE_DEVICES, PCI bus order) and its own ports. execnet sets a spec's env
        in the new interpreter before xdist's worker code (and so anything of ours) runs."""
        gpus = self.state.plan.devices
        ports = devices.free_ports(2 * len(specs))
        for i, spec in enumerate(specs):
            spec.env.update(devices.worker_env(None if gpus is None else gpus.worker_gpus(i),
                                               (ports[2 * i], ports[2 * i + 1])))

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Gate items carry their work group as xdist's ``@group`` suffix: a worker that collected
        none means the test paths hold no benchmark (a usage error, raised here on the controller:
        raised on a worker it would crash xdist)."""
        if ids and not any("@" in nodeid for nodeid in ids):  # none at all: pytest's own "no tests ran"
            raise pytest.UsageError(collection.no_gate_tests(node.config))

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = (getattr(node, "workeroutput", None) or {}).get(WIRE_KEY)
        if payload is not None:
            settling.merge_worker(self.state, payload)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if workers.is_worker(config):
        config.workeroutput[WIRE_KEY] = settling.worker_payload(state)  # type: ignore[attr-defined]
        return
    if state.family_size is None and session.items:  # no xdist: this process ran the tests
        _policy(state, session)
    session.exitstatus = settling.finish(state, session.exitstatus)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None and not workers.is_worker(config):
        terminal.summary(terminalreporter, state)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Mark a gate test whose checks are undecided: reported as INCONCLUSIVE (letter I), and in
    JUnit as a <skipped> element with the reason plus a ``verdict`` property."""
    outcome = yield
    report = outcome.get_result()
    run = getattr(item, "funcargs", {}).get("benchmark_run")
    if report.when == "call" and isinstance(run, BenchmarkRun):
        verdict = "fail" if report.failed else "inconclusive" if run.inconclusive and report.skipped else "pass"
        report.ckptgate_verdict = verdict
        item.user_properties.append(("verdict", verdict))  # JUnit takes properties from the teardown report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
    if getattr(report, "ckptgate_verdict", None) == "inconclusive":
        return "inconclusive", "I", (INCONCLUSIVE_WORD, {"yellow": True})
    return None
