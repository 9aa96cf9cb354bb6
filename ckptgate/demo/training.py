"""Training the demo series: the byte-level BPE tokenizer, the Qwen3 model, the deterministic
training loop, and the snapshots it saves."""

from __future__ import annotations

import contextlib
import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ckptgate.demo.data import EvalData, TrainingStream, make_eval_data
from ckptgate.demo.recipe import BRIDGE_DIR, BRIDGE_STEP, CHAT_TEMPLATE, DEMO_STEPS, EOS_TOKEN, IM_END, IM_START, TOKENIZER_SEED, TRAIN_SEED, Recipe


def _train_tokenizer(recipe: Recipe, eval_data: EvalData) -> Any:
    """Train a small byte-level BPE on the training distribution, wrapped for ``transformers``.

    Digits are split one per token before the byte-level step (as Qwen does), so numbers are
    spelled digit by digit and arithmetic is learnable by a tiny model.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    stream = TrainingStream(random.Random(TOKENIZER_SEED), eval_data, recipe)
    corpus = [stream.doc() for _ in range(3000)]
    corpus += ["<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"] * 20
    tok.train_from_iterator(corpus, trainer=trainer)

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        extra_special_tokens=[IM_START, IM_END],
        model_max_length=recipe.max_positions,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


def _make_model(recipe: Recipe, tokenizer: Any) -> Any:
    """A freshly initialised Qwen3ForCausalLM (initialisation uses the seeded global torch RNG)."""
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_kv_heads,
        head_dim=recipe.head_dim,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        architectures=["Qwen3ForCausalLM"],
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[eos_id, im_end_id],
        pad_token_id=eos_id,
        do_sample=False,
        max_new_tokens=64,
    )
    return model


def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warmup, cosine decay to ``final_lr_frac`` of the peak at ``anneal_start``, then a
    linear fall to zero at ``total_steps`` (the late plateau)."""
    if step < recipe.warmup_steps:
        return recipe.peak_lr * (step + 1) / recipe.warmup_steps
    floor = recipe.peak_lr * recipe.final_lr_frac
    if step >= recipe.anneal_start:
        left = recipe.total_steps - step
        return floor * max(0.0, left / max(1, recipe.total_steps - recipe.anneal_start))
    span = max(1, recipe.anneal_start - recipe.warmup_steps)
    progress = min(1.0, (step - recipe.warmup_steps) / span)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return floor + (recipe.peak_lr - floor) * shape


def _row(stream: TrainingStream, tokenizer: Any, rng: random.Random, recipe: Recipe) -> list[int]:
    """One packed training row of exactly ``seq_len`` tokens: EOS-separated documents.

    Half of the rows start with EOS and half start straight into a document: lm-eval's
    rolling-window perplexity starts each window with EOS (the model has no BOS), while the
    generation and choice prompts start without it. Packing wastes no compute on padding; the
    last document is cut off wherever the row ends.
    """
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    row: list[int] = [eos_id] if rng.random() < recipe.eos_prefix_prob else []
    while len(row) < recipe.seq_len:
        row += tokenizer.backend_tokenizer.encode(stream.doc(), add_special_tokens=False).ids
        row.append(eos_id)
    return row[: recipe.seq_len]


def _batch(stream: TrainingStream, tokenizer: Any, rng: random.Random, recipe: Recipe) -> Any:
    """A ``(batch_size, seq_len)`` tensor of packed rows (inputs and labels alike)."""
    import torch

    rows = [_row(stream, tokenizer, rng, recipe) for _ in range(recipe.batch_size)]
    return torch.tensor(rows, dtype=torch.long)


@contextlib.contextmanager
def _deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch, force deterministic kernels and one thread (a reduction's result depends on
    how it is split over threads), restoring the caller's global state after. Bit-identical
    retraining then holds on one kind of CPU; another instruction set may still round
    differently, which is why the trained weights are shipped."""
    import torch

    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(threads)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars ("Writing model shards") under our training bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _save_checkpoint(model: Any, tokenizer: Any, path: Path) -> None:
    """Save one snapshot as a standard Hugging Face folder, in bf16 like real checkpoints (half
    the bytes to ship; the CPU backends compute in float32, to which bf16 converts exactly)."""
    import copy

    import torch

    path.mkdir(parents=True, exist_ok=True)
    with _quiet_transformers():
        copy.deepcopy(model).to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
        # save_jinja_files=False keeps the chat template inside tokenizer_config.json.
        tokenizer.save_pretrained(path, save_jinja_files=False)


def step_dir(step: int) -> str:
    """Folder name of a demo snapshot (``step_0100``)."""
    return f"step_{step:04d}"


def train_and_snapshot(
    out_dir: Path, recipe: Recipe, progress: bool, *, stop_after: int | None = None
) -> None:
    """One training run, saving the demo snapshots and the bridge on the way.

    ``stop_after`` ends the run early (same schedule, so the snapshots taken are identical to a
    full run's): the tests use it to check determinism without training all the way.
    """
    import torch
    from tqdm.auto import tqdm

    snapshots = {s: out_dir / step_dir(s) for s in DEMO_STEPS}
    snapshots[BRIDGE_STEP] = out_dir / BRIDGE_DIR
    eval_data = make_eval_data()
    tokenizer = _train_tokenizer(recipe, eval_data)
    with _deterministic_torch(TRAIN_SEED):
        model = _make_model(recipe, tokenizer)
        model.train()
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=recipe.peak_lr,
            betas=(0.9, recipe.beta2),
            weight_decay=recipe.weight_decay,
        )
        rng = random.Random(TRAIN_SEED)
        stream = TrainingStream(rng, eval_data, recipe)
        bar = tqdm(
            total=recipe.total_steps,
            desc="ckptgate: training demo checkpoints",
            file=sys.stderr,
            disable=not progress,
            unit="step",
        )
        with bar:
            last = recipe.total_steps if stop_after is None else min(stop_after, recipe.total_steps)
            for step in range(1, last + 1):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step - 1, recipe)
                input_ids = _batch(stream, tokenizer, rng, recipe)
                loss = model(input_ids=input_ids, labels=input_ids).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizer.step()
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                if step in snapshots:
                    model.eval()
                    _save_checkpoint(model, tokenizer, snapshots[step])
                    model.train()
