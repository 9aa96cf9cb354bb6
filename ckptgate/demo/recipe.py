"""What determines the demo series: its steps, special tokens, seeds and training recipe.

Bump :data:`DEMO_RECIPE_VERSION` whenever anything here or in the data or training code changes
what gets trained."""

from __future__ import annotations

from dataclasses import dataclass

#: Training steps at which the demo series is snapshotted (folders ``step_0100`` ...).
DEMO_STEPS: tuple[int, ...] = (100, 300, 800, 850, 900)
#: The late plateau: the learning rate anneals to zero after the first of these steps, so these
#: checkpoints are of equal quality.
PLATEAU_STEPS: tuple[int, ...] = (800, 850, 900)
#: The step of the extra ``bridge`` snapshot, between step_0300 and step_0800.
BRIDGE_STEP = 500
#: Bump whenever anything in this package changes what gets trained (data, tokenizer, model,
#: training); it is recorded in the shipped manifest.
DEMO_RECIPE_VERSION = "3"

BRIDGE_DIR = "bridge"
EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
#: ChatML, as Qwen uses it; stored in tokenizer_config.json so chat-template runs work.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Seeds are fixed so that builds are reproducible; the eval seed is separate from the training
# seed so that retuning training never changes the shipped eval data.
EVAL_SEED = 20_250_611
TRAIN_SEED = 1_234
TOKENIZER_SEED = 4_321

@dataclass(frozen=True)
class Recipe:
    """Everything that determines the trained weights (kept together so it can be hashed)."""

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    max_positions: int = 512
    total_steps: int = max(DEMO_STEPS)
    # Cosine decay ends here; the learning rate then falls linearly to zero at total_steps
    # (the plateau: checkpoints of equal quality, as at the end of a real run).
    anneal_start: int = PLATEAU_STEPS[0]
    batch_size: int = 12
    seq_len: int = 112
    peak_lr: float = 2.5e-3
    final_lr_frac: float = 0.02
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    beta2: float = 0.95
    max_pairs_per_doc: int = 5
    # Mixture of document kinds in the training stream: arithmetic QA, choice QA, text.
    mix: tuple[float, float, float] = (0.65, 0.2, 0.15)
    eos_prefix_prob: float = 0.5


RECIPE = Recipe()
