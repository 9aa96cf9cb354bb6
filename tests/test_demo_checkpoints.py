"""The embedded demo checkpoints and the demo lm-eval tasks' data.

The checkpoints are shipped (``evaltests/demo``, checked against the sha256 of every file in its
manifest); the training code that made them is tested for determinism and layout. Whether their
scores rise with the steps is checked end to end through the gate elsewhere.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ckptgate import demo

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "evaltests" / "tasks" / "demo"
SNAPSHOTS = [f"step_{s:04d}" for s in demo.DEMO_STEPS] + ["bridge"]


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The shipped demo series, verified against its manifest."""
    return demo.demo_series()


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
    data = demo.data.make_eval_data()
    stream = demo.data.TrainingStream(random.Random(0), data, demo.RECIPE)
    corpus = "\n\n".join(stream.doc() for _ in range(3000))
    for item in data.arith_test:
        assert item["question"] not in corpus
        assert item["answer"].split("\n")[0] not in corpus
    for item in data.choice_test[:50]:
        assert item["question"] not in corpus
    for item in data.text_test:
        assert item["text"] not in corpus


# --- the shipped series and its manifest -----------------------------------------------------


def test_shipped_series_matches_its_manifest(demo_dir: Path) -> None:
    manifest = json.loads((demo_dir / demo.MANIFEST).read_text())
    assert manifest["steps"] == list(demo.DEMO_STEPS)
    assert manifest["bridge_step"] == demo.BRIDGE_STEP
    assert manifest["recipe_version"] == demo.DEMO_RECIPE_VERSION
    assert {name.split("/")[0] for name in manifest["sha256"]} == set(SNAPSHOTS)
    assert demo.verify.__wrapped__(demo_dir) == demo_dir


def test_plateau_is_the_last_steps_of_the_series() -> None:
    assert demo.PLATEAU_STEPS == demo.DEMO_STEPS[-len(demo.PLATEAU_STEPS):]
    recipe = demo.RECIPE
    assert recipe.anneal_start == demo.PLATEAU_STEPS[0] and recipe.total_steps == demo.PLATEAU_STEPS[-1]
    rates = [demo.training.lr_at(step, recipe) for step in range(recipe.total_steps)]
    assert max(rates) == pytest.approx(recipe.peak_lr, rel=1e-6)
    plateau = rates[recipe.anneal_start:]
    assert plateau == sorted(plateau, reverse=True) and plateau[-1] < plateau[0] / 50
    assert plateau[0] == pytest.approx(recipe.peak_lr * recipe.final_lr_frac)


@pytest.mark.parametrize("damage", ["edit", "delete", "add"])
def test_a_damaged_copy_is_refused_naming_the_file(demo_dir: Path, tmp_path: Path, damage: str) -> None:
    from ckptgate.errors import CkptgateError

    copy = demo.copy_demo(tmp_path / "series")
    assert demo.verify.__wrapped__(copy) == copy
    target = copy / "step_0300" / "model.safetensors"
    if damage == "edit":
        data = bytearray(target.read_bytes())
        data[-1] ^= 1
        target.write_bytes(bytes(data))
    elif damage == "delete":
        target.unlink()
    else:
        (copy / "step_0300" / "extra.bin").write_bytes(b"x")
    with pytest.raises(CkptgateError, match="step_0300/(model.safetensors|extra.bin)"):
        demo.verify.__wrapped__(copy)


def test_the_gate_refuses_a_damaged_shipped_series(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckptgate.errors import CkptgateError

    copy = demo.copy_demo(tmp_path / "series")
    (copy / "bridge" / "config.json").write_text("{}")
    monkeypatch.setattr(demo, "SHIPPED_DIR", copy)
    with pytest.raises(CkptgateError, match="bridge/config.json: sha256 differs"):
        demo.demo_bridge()


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
    assert dtypes == {"BF16"}


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


def test_retraining_is_deterministic_on_one_machine(demo_dir: Path, tmp_path: Path) -> None:
    # Training is bit-identical run to run on one kind of CPU (not across CPUs: the shipped
    # weights are what every machine uses). The first 100 steps, twice.
    for run in ("a", "b"):
        demo.training.train_and_snapshot(tmp_path / run, demo.RECIPE, progress=False, stop_after=demo.DEMO_STEPS[0])
    name = f"step_{demo.DEMO_STEPS[0]:04d}"
    for file in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / "a" / name / file).read_bytes() == (tmp_path / "b" / name / file).read_bytes(), file
    # The retrained snapshot has the shipped layout, and the same tokenizer: BPE training counts
    # pairs, no floating point, so it is identical on every machine.
    shipped = demo_dir / name
    assert sorted(p.name for p in (tmp_path / "a" / name).iterdir()) == sorted(p.name for p in shipped.iterdir())
    assert (tmp_path / "a" / name / "tokenizer.json").read_bytes() == (shipped / "tokenizer.json").read_bytes()
