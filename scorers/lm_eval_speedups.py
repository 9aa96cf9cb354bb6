"""Speed-ups of lm-eval internals that leave every output unchanged.

lm-eval 0.4.13's ``lm_eval.utils.apply_template`` compiles its Jinja template from source on
every call (``env.from_string``), and ``doc_to_text``/``doc_to_target``/``doc_to_choice`` call it
for every document and again for every few-shot example of every document: thousands of
compilations of the same few strings per task, a tenth of the demo suite's wall time on CPU
(upstream: EleutherAI/lm-evaluation-harness#1286, still open). Here compiled templates are
cached by their source in lm-eval's own environment, so rendering, filters and StrictUndefined
errors are exactly lm-eval's.
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_ckptgate_template_cache"


def install_template_cache() -> bool:
    """Replace ``lm_eval.utils.apply_template`` by a caching one (idempotent).

    Returns False, changing nothing, when lm-eval's module no longer has the shape this was
    written for (an ``env`` Jinja environment and ``apply_template(template, doc)``).
    """
    from lm_eval import utils

    current = utils.apply_template
    if getattr(current, _MARK, False):
        return True
    env = getattr(utils, "env", None)
    if env is None or not callable(getattr(env, "from_string", None)):
        return False
    compiled = functools.lru_cache(maxsize=4096)(env.from_string)

    @functools.wraps(current)
    def apply_template(template: str, doc: dict[str, Any]) -> str:
        return compiled(template).render(**doc)

    setattr(apply_template, _MARK, True)
    apply_template.uncached = current  # type: ignore[attr-defined]
    utils.apply_template = apply_template
    return True
