"""The embedded demo checkpoints and the demo lm-eval tasks' data.

The checkpoints come from :func:`ckptgate.demo.ensure_demo` (the shared cache, built once per
machine and recipe, about a minute on two cores), so only the first test run pays for training.
Whether their scores rise with the steps is checked end to end through the gate elsewhere.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from ckptgate import demo

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "evaltests" / "tasks" / "demo"
SNAPSHOTS = [f"step_{s:04d}" for s in demo.DEMO_STEPS] + ["bridge"]


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The cached demo series (built on first use; safe under pytest-xdist thanks to the lock)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return demo.ensure_demo(progress=False)


# --- shipped eval data ----------------------------------------------------------------------


def test_shipped_eval_data_is_what_write_eval_data_produces(tmp_path: Path) -> None:
    demo.write_eval_data(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    shipped = sorted(p.name for p in TASKS_DIR.glob("*.jsonl"))
    assert written == shipped == sorted(demo.EVAL_FILES)
    for name in written:
        assert (tmp_path / name).read_bytes() == (TASKS_DIR / name).read_bytes(), name


def test_eval_data_sizes_and_answers() -> None:
    files = demo.eval_data_files()
    rows = {name: [json.loads(line) for line in text.splitlines()] for name, text in files.items()}
    assert len(rows["arithmetic_test.jsonl"]) == 200
    assert len(rows["choice_test.jsonl"]) == 200
    assert len(rows["text_test.jsonl"]) == 40
    for row in rows["arithmetic_test.jsonl"] + rows["arithmetic_fewshot.jsonl"]:
        a, b = (int(x) for x in row["question"].removeprefix("What is ").rstrip("?").split(" plus "))
        assert row["answer"].endswith(f"\n#### {a + b}")
    for row in rows["choice_test.jsonl"]:
        numbers = [int(c) for c in row["choices"]]
        assert len(set(numbers)) == 4
        assert numbers[row["label"]] == max(numbers)


def test_eval_items_are_held_out_of_training() -> None:
    data = demo._make_eval_data()
    stream = demo._TrainingStream(random.Random(0), data, demo._RECIPE)
    corpus = "\n\n".join(stream.doc() for _ in range(3000))
    for item in data.arith_test:
        assert item["question"] not in corpus
        assert item["answer"].split("\n")[0] not in corpus
    for item in data.choice_test[:50]:
        assert item["question"] not in corpus
    for item in data.text_test:
        assert item["text"] not in corpus


# --- the cache -------------------------------------------------------------------------------


def test_default_cache_root_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert demo.default_cache_root() == tmp_path / "ckptgate" / "demo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert demo.default_cache_root() == Path.home() / ".cache" / "ckptgate" / "demo"


def _fake_build(calls: list[int], delay: float = 0.0):
    """A stand-in for build_demo that writes the expected layout instantly and counts calls."""

    def build(out_dir: Path, *, progress: bool = True) -> Path:
        calls.append(1)
        time.sleep(delay)
        for name in SNAPSHOTS:
            (out_dir / name).mkdir(parents=True)
            (out_dir / name / "model.safetensors").write_bytes(b"fake")
        return out_dir

    return build


def test_ensure_demo_builds_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[int] = []
    monkeypatch.setattr(demo, "build_demo", _fake_build(calls))
    first = demo.ensure_demo(tmp_path, progress=False)
    second = demo.ensure_demo(tmp_path, progress=False)
    assert first == second
    assert first.parent == tmp_path and first.name == demo.demo_cache_key()
    assert calls == [1]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_ensure_demo_concurrent_callers_build_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # flock locks belong to open file descriptions, so threads contend just like processes.
    calls: list[int] = []
    monkeypatch.setattr(demo, "build_demo", _fake_build(calls, delay=0.3))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(demo.ensure_demo(tmp_path, progress=False)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert calls == [1]


def test_ensure_demo_failed_build_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(out_dir: Path, *, progress: bool = True) -> Path:
        (out_dir / "step_0100").mkdir()
        raise RuntimeError("boom")

    monkeypatch.setattr(demo, "build_demo", broken)
    with pytest.raises(RuntimeError, match="boom"):
        demo.ensure_demo(tmp_path, progress=False)
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_ensure_demo_twice_returns_cached_series(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_rebuild(out_dir: Path, *, progress: bool = True) -> Path:
        raise AssertionError("ensure_demo rebuilt a cached series")

    monkeypatch.setattr(demo, "build_demo", no_rebuild)
    assert demo.ensure_demo(progress=False) == demo_dir
    assert demo.ensure_demo(demo_dir.parent, progress=False) == demo_dir


# --- the checkpoints -------------------------------------------------------------------------


def test_series_layout(demo_dir: Path) -> None:
    for name in SNAPSHOTS:
        files = {p.name for p in (demo_dir / name).iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
        } <= files, name


def test_config_is_a_small_qwen3(demo_dir: Path) -> None:
    from safetensors import safe_open

    config = json.loads((demo_dir / "step_0800" / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"]
    assert config["model_type"] == "qwen3"
    assert config["tie_word_embeddings"] is True
    with safe_open(str(demo_dir / "step_0800" / "model.safetensors"), "pt") as f:
        n_params = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert 500_000 < n_params < 1_500_000
    assert dtypes == {"F32"}


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_checkpoints_load_offline_and_generate(demo_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3ForCausalLM

    path = demo_dir / "step_0800"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    assert isinstance(model, Qwen3ForCausalLM)
    assert model.dtype == torch.float32
    assert len(tokenizer) == model.config.vocab_size
    prompt = "Question: What is 12 plus 4?\nAnswer:"
    enc = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, enc.input_ids.shape[1] :], skip_special_tokens=True)
    assert text.startswith(" 12 + 4 = ")  # the trained format: restate, then answer


def test_tokenizer_splits_digits_and_has_chat_template(demo_dir: Path) -> None:
    from transformers import AutoTokenizer

    path = demo_dir / "step_0100"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    assert [t for t in tokenizer.tokenize("12345") if t] == ["1", "2", "3", "4", "5"]
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.bos_token is None
    assert 256 < len(tokenizer) <= 1024
    config = json.loads((path / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in config["chat_template"]
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer("<|im_start|>user<|im_end|>").input_ids
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") == ids[0]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == ids[-1]


def test_training_is_deterministic(demo_dir: Path, tmp_path: Path) -> None:
    # Retrain the first 100 steps (same schedule) and compare with the cached snapshot byte for byte.
    demo._train_and_snapshot(tmp_path, demo._RECIPE, progress=False, stop_after=demo.DEMO_STEPS[0])
    name = f"step_{demo.DEMO_STEPS[0]:04d}"
    for file in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / name / file).read_bytes() == (demo_dir / name / file).read_bytes(), file
