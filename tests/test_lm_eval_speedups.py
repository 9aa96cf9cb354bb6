"""The template cache renders exactly what lm-eval renders, errors included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scorers.lm_eval_speedups import install_template_cache

TEMPLATES = [
    "Question: {{question}}\nAnswer:",
    "{{question.strip()}} {{choices | join(', ')}}",
    "{{ question | regex_replace('a+', 'A') }}\n",
    "{% for c in choices %}{{ loop.index }}. {{ c }}\n{% endfor %}",
]


@pytest.fixture(scope="module")
def utils():
    from lm_eval import utils

    assert install_template_cache()
    return utils


def test_installing_twice_keeps_one_cache(utils) -> None:
    cached = utils.apply_template
    assert install_template_cache()
    assert utils.apply_template is cached


@given(
    template=st.sampled_from(TEMPLATES),
    question=st.text(max_size=40),
    choices=st.lists(st.text(max_size=10), max_size=4),
)
def test_cached_rendering_equals_lm_eval(utils, template: str, question: str, choices: list[str]) -> None:
    doc = {"question": question, "choices": choices}
    assert utils.apply_template(template, doc) == utils.apply_template.uncached(template, doc)


def test_missing_field_still_raises(utils) -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        utils.apply_template("{{ missing }}", {"question": "q"})


def test_lm_eval_tasks_render_through_the_cache(utils) -> None:
    from lm_eval.api import task

    assert task.utils.apply_template is utils.apply_template
