"""Checkpoint discovery, validation, fingerprinting and the shadow view, on tiny fabricated folders."""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers_checkpoints import (
    make_checkpoint,
    safetensors_keys,
    tensors,
    tree_state,
    write_index,
    write_tokenizer,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from ckptgate.checkpoints import (
    Checkpoint,
    default_shadow_root,
    discover,
    discover_all,
    fingerprint,
    parse_step,
    validate_checkpoint,
)
from ckptgate.errors import CheckpointError, CkptgateError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may write into the real ~/.cache, even through the default shadow root."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def shadow(tmp_path: Path) -> Path:
    return tmp_path / "shadow"


def error_of(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        validate_checkpoint(path)
    return str(info.value)


def assert_words(message: str, *words: str) -> None:
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


# ---------------------------------------------------------------------------------------------
# Names and ordering


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("step_0300", (300, False)),
        ("step-7", (7, False)),
        ("step12", (12, False)),
        ("epoch_3", (3, False)),
        ("checkpoint-1500", (1500, False)),
        ("run3_step2000", (2000, False)),
        ("run3-step_2000", (2000, False)),
        ("run_epoch2", (2, False)),
        ("run3_final", (None, True)),
        ("final", (None, True)),
        ("bridge", (None, False)),
        ("notes", (None, False)),
        ("checkpoint", (None, False)),
        ("stepper_3", (None, False)),
        ("finality", (None, False)),
    ],
)
def test_parse_step(name: str, expected: tuple[int | None, bool]) -> None:
    assert parse_step(name) == expected


def test_parent_orders_numerically_with_final_last_and_ignores_other_children(tmp_path: Path, shadow: Path) -> None:
    run = tmp_path / "run"
    for name in ["step_1000", "run_final", "step_900", "step_50", "step_0950"]:
        make_checkpoint(run / name)
    (run / "logs").mkdir()
    (run / "README.md").write_text("notes")
    found = discover(run, shadow_root=shadow)
    assert [c.label for c in found] == ["step_50", "step_900", "step_0950", "step_1000", "run_final"]
    assert [c.step for c in found] == [50, 900, 950, 1000, None]
    assert found[-1].is_final
    assert all(c.load_path == c.path and c.path.is_absolute() for c in found)
    assert not shadow.exists()  # no shadow view needed, none built


@pytest.mark.parametrize(
    ("names", "order"),
    [
        (
            ["checkpoint-200", "checkpoint-1000", "checkpoint-30"],
            ["checkpoint-30", "checkpoint-200", "checkpoint-1000"],
        ),
        (["epoch_10", "epoch_2", "epoch_1"], ["epoch_1", "epoch_2", "epoch_10"]),
        (["x_step20", "x_step3", "x_final"], ["x_step3", "x_step20", "x_final"]),
    ],
)
def test_other_naming_patterns(tmp_path: Path, shadow: Path, names: list[str], order: list[str]) -> None:
    for name in names:
        make_checkpoint(tmp_path / "run" / name)
    assert [c.label for c in discover(tmp_path / "run", shadow_root=shadow)] == order


def write_tokenizer_stub(folder: Path) -> None:
    """vocab.json + merges.txt: a byte-level BPE vocabulary, cheaper than building tokenizer.json."""
    (folder / "vocab.json").write_text('{"a": 0}')
    (folder / "merges.txt").write_text("#version: 0.2\n")


@settings(max_examples=15, deadline=None)
@given(
    steps=st.lists(st.integers(0, 10**7), min_size=1, max_size=6, unique=True),
    style=st.sampled_from(["step_{:04d}", "step_{}", "checkpoint-{}", "run_step{}", "epoch_{}"]),
    final=st.booleans(),
)
def test_discovery_order_is_numeric_for_any_steps(steps: list[int], style: str, final: bool) -> None:
    names = [style.format(step) for step in steps] + (["run_final"] if final else [])
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        for name in names:
            write_tokenizer_stub(make_checkpoint(run / name, tokenizer=False))
        found = discover(run, shadow_root=Path(tmp) / "shadow")
    assert [c.step for c in found] == sorted(steps) + ([None] if final else [])
    assert [c.label for c in found] == [style.format(s) for s in sorted(steps)] + (["run_final"] if final else [])


def test_single_checkpoint_folder_relative_path(tmp_path: Path, shadow: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = make_checkpoint(tmp_path / "runs" / "step_0300")
    monkeypatch.chdir(tmp_path / "runs")
    [found] = discover("step_0300", shadow_root=shadow)
    assert found.label == "step_0300"
    assert found.step == 300
    assert found.path == ckpt.resolve() and found.load_path == found.path
    assert found.role == "candidate"
    assert len(found.fingerprint) == 64 and int(found.fingerprint, 16) >= 0


def test_unnumbered_single_checkpoint_and_unsafe_label(tmp_path: Path, shadow: Path) -> None:
    [found] = discover(make_checkpoint(tmp_path / "my model [v2]"), role="bridge", shadow_root=shadow)
    assert found.step is None and not found.is_final
    assert found.label == "my_model_v2"
    assert found.role == "bridge"


def test_symlinked_child_keeps_its_name_and_duplicates_are_found_through_links(tmp_path: Path) -> None:
    real = make_checkpoint(tmp_path / "store" / "abc123")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "step_5").symlink_to(real, target_is_directory=True)
    [found] = discover(tmp_path / "run", shadow_root=tmp_path / "shadow")
    assert (found.label, found.step, found.path) == ("step_5", 5, real)
    with pytest.raises(CheckpointError, match="given twice"):
        discover_all([tmp_path / "run", real])


def test_parent_with_stray_weights_is_still_a_parent(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "run" / "step_1")
    save_file(tensors(), str(tmp_path / "run" / "ema.safetensors"))
    assert [c.label for c in discover(tmp_path / "run")] == ["step_1"]


def test_weights_without_config_are_treated_as_one_checkpoint(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "export")
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        discover(ckpt)


def test_unknown_role_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="role"):
        discover(make_checkpoint(tmp_path / "step_1"), role="baseline")


def test_dict_round_trip_through_json(tmp_path: Path, shadow: Path) -> None:
    [ckpt] = discover(make_checkpoint(tmp_path / "run3_final"), shadow_root=shadow)
    wire = json.loads(json.dumps(ckpt.to_dict()))
    assert Checkpoint.from_dict(wire) == ckpt
    with pytest.raises(CheckpointError, match="malformed"):
        Checkpoint.from_dict({"label": "x"})


def test_default_shadow_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_shadow_root() == tmp_path / "ckptgate" / "shadow"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_shadow_root() == tmp_path / "home" / ".cache" / "ckptgate" / "shadow"


# ---------------------------------------------------------------------------------------------
# Validation errors


def test_errors_are_ckptgate_errors() -> None:
    assert issubclass(CheckpointError, CkptgateError)


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "step_1"
    assert_words(error_of(missing), str(missing), "does not exist")
    with pytest.raises(CheckpointError, match="does not exist"):
        discover(missing)


def test_file_instead_of_folder(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    assert_words(error_of(ckpt / "model.safetensors"), "is a file", str(ckpt))


def test_no_weights(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    (ckpt / "model.safetensors").unlink()
    assert_words(error_of(ckpt), str(ckpt), "no weights", "*.safetensors", "config.json", "tokenizer.json")


def test_pickle_weights_are_not_supported(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"\x80\x02pickle")
    (ckpt / "training_args.bin").write_bytes(b"\x80\x02pickle")
    msg = error_of(ckpt)
    assert_words(msg, "pytorch_model.bin", "safetensors", "save_pretrained", "safe_serialization=True")
    assert "training_args.bin" not in msg


def test_truncated_safetensors_names_file_and_sizes(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    weights = ckpt / "model.safetensors"
    full = weights.stat().st_size
    with open(weights, "r+b") as handle:
        handle.truncate(full - 100)
    assert_words(error_of(ckpt), "model.safetensors", "truncated", f"{full - 100} bytes", f"{full} bytes", str(ckpt))


def test_truncated_inside_header(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    with open(ckpt / "model.safetensors", "r+b") as handle:
        handle.truncate(20)
    assert_words(error_of(ckpt), "model.safetensors", "truncated", "20 bytes")


def test_too_short_file(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    (ckpt / "model.safetensors").write_bytes(b"abc")
    assert_words(error_of(ckpt), "model.safetensors", "3 bytes", "too short")


def test_corrupt_header_json(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    header = b"{not json at all"
    (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    assert_words(error_of(ckpt), "model.safetensors", "corrupt safetensors header")


def test_garbage_header_length(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    (ckpt / "model.safetensors").write_bytes(b"\xff" * 64)
    assert_words(error_of(ckpt), "model.safetensors", "not a valid safetensors file")


def test_header_entry_inconsistent_with_offsets(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}).encode()
    (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 32)
    assert_words(error_of(ckpt), "model.safetensors", "'w'", "needs 64 bytes")


def test_trailing_bytes(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    with open(ckpt / "model.safetensors", "ab") as handle:
        handle.write(b"junk")
    assert_words(error_of(ckpt), "model.safetensors", "4 unexpected trailing bytes")


def test_config_missing(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    (ckpt / "config.json").unlink()
    assert_words(error_of(ckpt), str(ckpt), "no config.json", "save_pretrained")


def test_config_invalid_json(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1")
    (ckpt / "config.json").write_text('{"architectures": [')
    assert_words(error_of(ckpt), "config.json is not valid JSON", str(ckpt))


@pytest.mark.parametrize("config", [{"model_type": "qwen3"}, {"architectures": []}, {"architectures": "Qwen3"}])
def test_config_without_architectures(tmp_path: Path, config: dict[str, object]) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1", config=config)
    assert_words(error_of(ckpt), "architectures", '"architectures": ["Qwen3ForCausalLM"]', str(ckpt))


def test_config_not_an_object(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1", config=["Qwen3ForCausalLM"])  # type: ignore[arg-type]
    assert_words(error_of(ckpt), "config.json holds a JSON list")


def test_missing_tokenizer(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1", tokenizer=False)
    (ckpt / "tokenizer_config.json").write_text("{}")
    (ckpt / "vocab.json").write_text("{}")  # without merges.txt: not a tokenizer
    msg = error_of(ckpt)
    assert_words(msg, str(ckpt), "no tokenizer", "tokenizer_config.json, vocab.json", "tokenizer.save_pretrained")
    assert_words(msg, "tokenizer.json", "tokenizer.model", "vocab.json+merges.txt")


@pytest.mark.parametrize(
    "files", [["tokenizer.json"], ["tokenizer.model"], ["vocab.json", "merges.txt"], ["vocab.txt"], ["qwen.tiktoken"]]
)
def test_accepted_tokenizers(tmp_path: Path, files: list[str]) -> None:
    ckpt = make_checkpoint(tmp_path / "step_1", tokenizer=False)
    for name in files:
        (ckpt / name).write_text("x")
    validate_checkpoint(ckpt)


def make_nanotron(folder: Path) -> Path:
    (folder / "model" / "model" / "decoder" / "0").mkdir(parents=True)
    (folder / "config.yaml").write_text("tokenizer:\n  tokenizer_name_or_path: HuggingFaceTB/cosmo2-tokenizer\n")
    (folder / "model_config.json").write_text('{"hidden_size": 32}')
    return folder


def test_nanotron_checkpoint(tmp_path: Path) -> None:
    ckpt = make_nanotron(tmp_path / "step_1000")
    msg = error_of(ckpt)
    assert_words(
        msg,
        "Nanotron",
        "Hugging Face format",
        "convert_nanotron_to_hf.py",
        f"--checkpoint_path={ckpt}",
        "--tokenizer_name=HuggingFaceTB/cosmo2-tokenizer",
        "converted folder",
    )
    with pytest.raises(CheckpointError, match="Nanotron"):
        discover(ckpt)


def test_nanotron_parent_with_numbered_children(tmp_path: Path) -> None:
    make_nanotron(tmp_path / "checkpoints" / "1000")
    with pytest.raises(CheckpointError) as info:
        discover(tmp_path / "checkpoints")
    assert_words(str(info.value), "1000/", "Nanotron", "convert_nanotron_to_hf.py", "step_N")


def test_parent_without_checkpoints_lists_entries_and_patterns(tmp_path: Path) -> None:
    (tmp_path / "run" / "logs").mkdir(parents=True)
    (tmp_path / "run" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError) as info:
        discover(tmp_path / "run")
    assert_words(str(info.value), str(tmp_path / "run"), "logs/", "notes.txt", "step_N", "checkpoint-N", "_final")


def test_parent_with_bad_children_lists_each(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_checkpoint(run / "step_100")
    make_checkpoint(run / "step_200", tokenizer=False)
    (make_checkpoint(run / "step_300") / "config.json").unlink()
    (run / "unrelated").mkdir()
    with pytest.raises(CheckpointError) as info:
        discover(run)
    msg = str(info.value)
    assert_words(msg, "2 of its 3 checkpoints", "- step_200:", "no tokenizer", "- step_300:", "no config.json")
    assert "- step_100" not in msg and "unrelated" not in msg


# ---------------------------------------------------------------------------------------------
# Sharded checkpoints and the shadow view


def make_sharded(folder: Path) -> Path:
    make_checkpoint(folder)
    (folder / "model.safetensors").unlink()
    parts = tensors()
    names = sorted(parts)
    first = {k: parts[k] for k in names[:1]}
    second = {k: parts[k] for k in names[1:]}
    save_file(first, str(folder / "model-00001-of-00002.safetensors"))
    save_file(second, str(folder / "model-00002-of-00002.safetensors"))
    weight_map = {k: "model-00001-of-00002.safetensors" for k in first}
    weight_map |= {k: "model-00002-of-00002.safetensors" for k in second}
    write_index(folder, weight_map)
    return folder


def test_sharded_checkpoint_loads_in_place(tmp_path: Path, shadow: Path) -> None:
    [found] = discover(make_sharded(tmp_path / "step_1"), shadow_root=shadow)
    assert found.load_path == found.path
    assert not shadow.exists()


def test_sharded_with_missing_shard(tmp_path: Path) -> None:
    ckpt = make_sharded(tmp_path / "step_1")
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    assert_words(error_of(ckpt), "model.safetensors.index.json", "do not exist", "model-00002-of-00002.safetensors")


def test_shards_without_index(tmp_path: Path) -> None:
    ckpt = make_sharded(tmp_path / "step_1")
    (ckpt / "model.safetensors.index.json").unlink()
    assert_words(error_of(ckpt), "no model.safetensors and no model.safetensors.index.json", "model-00001-of-00002")


def test_invalid_index(tmp_path: Path) -> None:
    ckpt = make_sharded(tmp_path / "step_1")
    (ckpt / "model.safetensors.index.json").write_text('{"metadata": {}}')
    assert_words(error_of(ckpt), "weight_map")


def make_misnamed(folder: Path, present: str = "model.safetensors") -> Path:
    """The gotcha: one unsharded file, but an index that expects model-00001-of-00001."""
    make_checkpoint(folder, weights_name=present)
    keys = safetensors_keys(folder / present)
    write_index(folder, {k: "model-00001-of-00001.safetensors" for k in keys})
    return folder


def test_misnamed_single_shard_gets_an_idempotent_shadow_view(tmp_path: Path, shadow: Path) -> None:
    ckpt = make_misnamed(tmp_path / "run" / "step_100")
    before = tree_state(ckpt)
    [found] = discover(ckpt, shadow_root=shadow)
    assert found.path == ckpt and found.load_path != ckpt
    assert found.load_path.parent == shadow / found.fingerprint
    view = found.load_path
    assert sorted(os.listdir(view)) == [
        "config.json",
        "model-00001-of-00001.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    assert os.readlink(view / "model-00001-of-00001.safetensors") == str(ckpt / "model.safetensors")
    assert all((view / n).is_symlink() for n in os.listdir(view))
    assert sorted(p.name for p in (shadow / found.fingerprint).iterdir()) == [view.name]  # no temp left over
    # Idempotent: same view, untouched.
    inode = view.stat().st_ino
    [again] = discover(ckpt, shadow_root=shadow)
    assert again == found and view.stat().st_ino == inode
    # A file added to the checkpoint (not part of the fingerprint) makes the view stale: rebuilt.
    (ckpt / "README.md").write_text("notes")
    [third] = discover(ckpt, shadow_root=shadow)
    assert third.load_path == view and (view / "README.md").is_symlink()
    assert sorted(p.name for p in (shadow / found.fingerprint).iterdir()) == [view.name]
    (ckpt / "README.md").unlink()
    assert tree_state(ckpt) == before


def test_copies_get_their_own_shadow_views(tmp_path: Path, shadow: Path) -> None:
    a = make_misnamed(tmp_path / "a" / "step_1")
    b = tmp_path / "b" / "step_1"
    shutil.copytree(a, b)
    [ca] = discover(a, shadow_root=shadow)
    [cb] = discover(b, shadow_root=shadow)
    assert ca.fingerprint == cb.fingerprint and ca.load_path != cb.load_path
    assert os.readlink(cb.load_path / "model-00001-of-00001.safetensors") == str(b / "model.safetensors")


def test_generic_alias_matches_the_single_unsharded_file_by_tensor_names(tmp_path: Path, shadow: Path) -> None:
    ckpt = make_misnamed(tmp_path / "step_1", present="weights.safetensors")
    [found] = discover(ckpt, shadow_root=shadow)
    assert os.readlink(found.load_path / "model-00001-of-00001.safetensors") == str(ckpt / "weights.safetensors")
    assert not (found.load_path / "weights.safetensors").exists()


def test_alias_refused_when_tensors_do_not_match(tmp_path: Path) -> None:
    ckpt = make_misnamed(tmp_path / "step_1")
    write_index(ckpt, {"some.other.tensor": "model-00001-of-00001.safetensors"})
    assert_words(error_of(ckpt), "do not exist", "model-00001-of-00001.safetensors", "present: model.safetensors")


def test_alias_refused_with_two_missing_shards(tmp_path: Path) -> None:
    ckpt = make_misnamed(tmp_path / "step_1")
    keys = safetensors_keys(ckpt / "model.safetensors")
    write_index(ckpt, {k: f"model-0000{i % 2 + 1}-of-00002.safetensors" for i, k in enumerate(keys)})
    assert_words(error_of(ckpt), "model-00001-of-00002.safetensors, model-00002-of-00002.safetensors")


def test_shadow_view_loads_through_transformers_and_leaves_user_files_alone(tmp_path: Path, shadow: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    ckpt = tmp_path / "run" / "step_0100"
    config = Qwen3Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        vocab_size=128,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(ckpt)
    write_tokenizer(ckpt, vocab_size=128)
    keys = safetensors_keys(ckpt / "model.safetensors")
    write_index(ckpt, {k: "model-00001-of-00001.safetensors" for k in keys})
    before = tree_state(ckpt)

    [found] = discover(ckpt.parent, shadow_root=shadow)
    assert found.load_path != ckpt
    loaded = AutoModelForCausalLM.from_pretrained(found.load_path).eval()
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert tree_state(ckpt) == before


# ---------------------------------------------------------------------------------------------
# Several specs


def test_label_collisions_get_parent_prefix(tmp_path: Path, shadow: Path) -> None:
    for run, steps in {"runA": [100, 200], "runB": [100]}.items():
        for step in steps:
            make_checkpoint(tmp_path / run / f"step_{step}")
    make_checkpoint(tmp_path / "solo" / "bridge")
    found = discover_all([tmp_path / "runA", tmp_path / "runB", tmp_path / "solo" / "bridge"], shadow_root=shadow)
    assert [c.label for c in found] == ["runA-step_100", "runA-step_200", "runB-step_100", "bridge"]
    assert [c.step for c in found] == [100, 200, 100, None]
    assert len({c.label for c in found}) == len(found)


def test_label_collisions_with_same_parent_name_go_up_further(tmp_path: Path, shadow: Path) -> None:
    make_checkpoint(tmp_path / "x" / "run" / "step_1")
    make_checkpoint(tmp_path / "y" / "run" / "step_1")
    found = discover_all([tmp_path / "x" / "run", tmp_path / "y" / "run" / "step_1"], shadow_root=shadow)
    assert [c.label for c in found] == ["x-run-step_1", "y-run-step_1"]


def test_same_checkpoint_twice_is_an_error(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "run" / "step_1")
    make_checkpoint(tmp_path / "run" / "step_2")
    with pytest.raises(CheckpointError) as info:
        discover_all([tmp_path / "run", str(tmp_path / "run" / "step_2")])
    assert_words(str(info.value), "given twice", str(tmp_path / "run" / "step_2"))
    with pytest.raises(CheckpointError, match="given twice"):
        discover_all([tmp_path / "run" / "step_1", tmp_path / "run" / ".." / "run" / "step_1"])


def test_no_specs_is_an_error() -> None:
    with pytest.raises(CheckpointError, match="--checkpoint"):
        discover_all([])


# ---------------------------------------------------------------------------------------------
# Fingerprint


def test_fingerprint_ignores_location_and_mtime_but_not_content(tmp_path: Path) -> None:
    a = make_checkpoint(tmp_path / "a" / "step_1")
    b = tmp_path / "b" / "elsewhere"
    shutil.copytree(a, b)
    os.utime(b / "model.safetensors", (1, 1))
    assert fingerprint(a) == fingerprint(b)

    noisy = {k: v + np.float32(1e-3) for k, v in tensors().items()}
    save_file(noisy, str(b / "model.safetensors"))
    assert fingerprint(b) != fingerprint(a)

    shutil.rmtree(b)
    shutil.copytree(a, b)
    (b / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"], "rope_theta": 1.0}))
    assert fingerprint(b) != fingerprint(a)

    shutil.rmtree(b)
    shutil.copytree(a, b)
    write_tokenizer(b, vocab_size=33)
    assert fingerprint(b) != fingerprint(a)


def big_weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"big": rng.standard_normal((2048, 1024), dtype=np.float32)}  # 8 MiB: sampled, not hashed whole


def test_fingerprint_samples_large_files(tmp_path: Path) -> None:
    a = make_checkpoint(tmp_path / "a", weights=big_weights(0))
    base = fingerprint(a)
    assert fingerprint(shutil.copytree(a, tmp_path / "copy")) == base

    noisy = make_checkpoint(tmp_path / "noisy", weights={"big": big_weights(0)["big"] + np.float32(1e-4)})
    assert fingerprint(noisy) != base

    # The documented trade-off: one element between sampled blocks does not change it ...
    w = big_weights(0)["big"]
    w[1100, 1] += 1.0  # byte offset ~4.3 MiB, between the 64 KiB samples
    assert fingerprint(make_checkpoint(tmp_path / "one_elem", weights={"big": w})) == base
    # ... while one element inside the first MiB does.
    w = big_weights(0)["big"]
    w[0, 0] += 1.0
    assert fingerprint(make_checkpoint(tmp_path / "first_elem", weights={"big": w})) != base


def test_validation_and_fingerprint_read_only_headers_and_samples(tmp_path: Path) -> None:
    """A 16 GiB (sparse) weights file is checked and fingerprinted in well under a second."""
    ckpt = make_checkpoint(tmp_path / "step_1", weights={"x": np.zeros(1, dtype=np.float32)})
    n = 4 * 1024**3
    header = json.dumps({"big": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    with open(ckpt / "model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 4 * n)
    start = time.perf_counter()
    validate_checkpoint(ckpt)
    fingerprint(ckpt)
    assert time.perf_counter() - start < 2.0
