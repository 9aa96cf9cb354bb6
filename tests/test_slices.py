"""Perplexity slices: streamed once from the hub (a fake one here) with their commit, then read offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ckptgate import slices
from ckptgate.errors import CkptgateError
from ckptgate.slices import Slice


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


class FakeHub:
    """A dataset of numbered documents, streamed row by row; counts what was read."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.read, self.calls = rows, 0, []

    def stream(self, repo: str, **kwargs: Any) -> Any:
        self.calls.append((repo, kwargs))
        for row in self.rows:
            self.read += 1
            yield row

    @staticmethod
    def resolve(repo: str, revision: str | None) -> str:
        return "c0ffee" * 6 + "abcd" if revision is None else revision


def web(n: int, size: int = 100) -> list[dict[str, Any]]:
    return [{"text": f"{i:04d} " + "x" * (size - 5), "url": f"https://example.org/{i}"} for i in range(n)]


def test_prefill_streams_only_what_the_budget_needs_and_records_the_commit() -> None:
    hub = FakeHub(web(10_000))
    spec = Slice("general_web", "allenai/c4", "validation", config="en", target_tokens=50)
    folder = slices.fetch(spec, stream=hub.stream, resolve=hub.resolve, progress=lambda _: None)
    assert hub.read == 50 * slices.BYTES_PER_TOKEN_BOUND // 100  # 400 bytes: 4 documents of 100 bytes
    assert hub.calls == [("allenai/c4", {"name": "en", "split": "validation", "streaming": True,
                                          "revision": "c0ffee" * 6 + "abcd"})]
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["revision"], meta["documents"], meta["bytes"]) == ("c0ffee" * 6 + "abcd", 4, 400)
    fetched = slices.load(spec)
    assert [doc_id for doc_id, _ in fetched.documents] == ["0", "1", "2", "3"]
    assert fetched.record["revision"] == meta["revision"] and fetched.record["source"] == "hub"
    # a second prefill with the same budget reads nothing; a larger budget fetches again
    slices.fetch(spec, stream=hub.stream, resolve=hub.resolve, progress=lambda _: None)
    assert len(hub.calls) == 1
    bigger = Slice("general_web", "allenai/c4", "validation", config="en", target_tokens=100)
    slices.fetch(bigger, stream=hub.stream, resolve=hub.resolve, progress=lambda _: None)
    assert len(slices.load(bigger).documents) == 8


def test_documents_join_their_text_fields_and_skip_empty_rows() -> None:
    rows = [{"problem": "1+1?", "generated_solution": "2"}, {"problem": " ", "generated_solution": ""},
            {"problem": "2+2?", "generated_solution": "4"}]
    hub = FakeHub(rows)
    spec = Slice("math_reasoning", "nvidia/OpenMathReasoning", "cot", ("problem", "generated_solution"), target_tokens=1000)
    slices.fetch(spec, stream=hub.stream, resolve=hub.resolve, progress=lambda _: None)
    assert [text for _, text in slices.load(spec).documents] == ["1+1?\n\n2", "2+2?\n\n4"]


def test_a_missing_text_field_names_the_fields_there_are() -> None:
    spec = Slice("code", "codeparrot/codeparrot-clean", "train", ("text",), target_tokens=10)
    hub = FakeHub([{"content": "print(1)", "repo_name": "a/b"}])
    with pytest.raises(CkptgateError, match=r"no field\(s\) text \(they have: content, repo_name\)"):
        slices.fetch(spec, stream=hub.stream, resolve=hub.resolve, progress=lambda _: None)
    assert not slices.slice_folder(spec).exists()  # nothing half written


def test_an_unfetched_slice_says_how_to_fetch_it_and_a_local_copy_replaces_the_hub(tmp_path: Path) -> None:
    spec = Slice("wiki_en", "wikimedia/wikipedia", "train", config="20231101.en", target_tokens=10)
    with pytest.raises(CkptgateError, match=r"has not been fetched.*ckptgate prefill --suite.*wiki_en/train.jsonl"):
        slices.load(spec)
    local = tmp_path / "data" / "wiki_en"
    local.mkdir(parents=True)
    (local / "train.jsonl").write_text(json.dumps({"text": "Alpha."}) + "\n\n" + json.dumps({"text": "Beta."}) + "\n")
    fetched = slices.load(spec, tmp_path / "data")
    assert fetched.documents == (("0", "Alpha."), ("1", "Beta.")) and fetched.record["source"] == "local"
    (local / "train.jsonl").write_text("{not json\n")
    with pytest.raises(CkptgateError, match=r"train.jsonl:1: not a JSON object per line"):
        slices.load(spec, tmp_path / "data")
    (local / "train.jsonl").write_text('[["text", "a pair list, not an object"]]\n')
    with pytest.raises(CkptgateError, match=r"train.jsonl:1: not a JSON object per line \(a list\)"):
        slices.load(spec, tmp_path / "data")


def test_tampered_documents_are_refused() -> None:
    spec = Slice("general_web", "allenai/c4", "validation", config="en", target_tokens=20)
    hub = FakeHub(web(10))
    folder = slices.fetch(spec, stream=hub.stream, resolve=hub.resolve, progress=lambda _: None)
    docs = folder / slices.DOCS_NAME
    docs.write_text(docs.read_text().replace("0000", "9999"))
    with pytest.raises(CkptgateError, match="do not match their recorded sha256"):
        slices.load(spec)


def test_another_source_is_another_cache_entry() -> None:
    a = Slice("s", "org/data", "train", config="x", target_tokens=10)
    assert a.key() != Slice("s", "org/data", "train", config="y", target_tokens=10).key()
    assert a.key() != Slice("s", "org/data", "train", config="x", revision="abc", target_tokens=10).key()
    assert a.key() == Slice("s", "org/data", "train", config="x", target_tokens=99).key()  # the budget only bounds it


def test_the_shipped_catalogue_holds_every_slice_of_the_stages() -> None:
    catalogue = slices.load_catalogue()
    assert {"general_web", "code", "books_newslike", "math_finemath3plus", "math_infiwebmath3plus",
            "web_fineweb_edu_sample10bt", "wiki_en_20231101", "math_finemath4plus", "math_infiwebmath4plus",
            "code_stackv2_edu_filtered", "code_starcoder2data_extras_lhq", "math_openmathreasoning",
            "math_openmathinstruct1", "code_opencodereasoning"} == set(catalogue)
    assert catalogue["general_web"] == Slice("general_web", "allenai/c4", "validation", ("text",), "en")
    assert catalogue["math_openmathreasoning"].text_fields == ("problem", "generated_solution")


def test_an_unknown_slice_names_the_closest_and_a_bad_entry_its_line(tmp_path: Path) -> None:
    from ckptgate.errors import SuiteError

    catalogue = slices.load_catalogue()
    with pytest.raises(SuiteError, match=r"stage2.yaml:7: unknown perplexity slice 'math_finemath4'\. Did you mean math_finemath4plus"):
        slices.pick(catalogue, "math_finemath4", "stage2.yaml:7")
    bad = tmp_path / "slices.yaml"
    bad.write_text("slices:\n  web: {dataset: allenai/c4, split: validation}\n  code: {dataset: org/code, text_fields: []}\n")
    with pytest.raises(SuiteError, match=r"slices.yaml:3: .*split"):
        slices.load_catalogue(bad)
