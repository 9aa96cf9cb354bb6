"""Pure checks over a model's response text for SFT-native probes.

Kept free of model I/O so scoring is deterministic and unit-testable.
"""
from __future__ import annotations

import difflib
import json
from typing import Any, Callable

# Tokens that must never appear in a finished chat answer; a leak means the
# chat template or stop tokens are broken.
TEMPLATE_TOKENS: tuple[str, ...] = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<s>", "</s>",
    "[INST]", "<|assistant|>", "<|user|>", "<|system|>",
)


def strict_json(text: str, required_keys: list[str] | None = None) -> bool:
    """The whole stripped response must be one JSON value."""
    try:
        value = json.loads(text.strip())
    except ValueError:
        return False
    if required_keys:
        return isinstance(value, dict) and all(k in value for k in required_keys)
    return True


def chat_clean(text: str) -> bool:
    """No leaked template tokens or role-turn lines."""
    if any(tok in text for tok in TEMPLATE_TOKENS):
        return False
    for line in text.splitlines():
        if line.strip().lower().startswith(("user:", "assistant:", "system:")):
            return False
    return text.count("<think>") <= text.count("</think>")


def concise(text: str, max_words: int = 50) -> bool:
    return len(text.split()) <= max_words


CHECKS: dict[str, Callable[..., bool]] = {
    "strict_json": strict_json, "chat_clean": chat_clean, "concise": concise,
}
format_check_names = {"bullets", "numbered_list", "strict_json", "python_parses"}


def run_checks(response: str, specs: list[dict[str, Any]]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for spec in specs:
        params = dict(spec)
        name = params.pop("check")
        if name not in CHECKS:
            close = difflib.get_close_matches(name, list(CHECKS))
            raise ValueError(f"unknown check {name!r}; did you mean {close}?")
        out[name] = CHECKS[name](response, **params)
    return out
