import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scorers.sft_checks import chat_clean, run_checks, strict_json


def test_strict_json_rejects_prose_and_trailing_comma():
    assert strict_json('{"a": 1}', required_keys=["a"])
    assert not strict_json('Sure! {"a": 1}')
    assert not strict_json('{"a": 1,}')


def test_chat_clean():
    assert chat_clean("Hello there.")
    assert not chat_clean("Hi<|im_end|>")
    assert not chat_clean("Hi\nUser: more")


def test_unknown_check_names_closest():
    with pytest.raises(ValueError, match="strict_json"):
        run_checks("x", [{"check": "strict_jsn"}])


def test_refusal_that_complies_fails():
    from scorers.sft_checks import refusal_without_compliance, exact_answer
    assert refusal_without_compliance("I can't help with that.", ["step 1"])
    assert not refusal_without_compliance("Sorry, but step 1: ...", ["step 1"])
    assert exact_answer("Paris.", "paris")


def test_format_checks():
    from scorers.sft_checks import bullets, numbered_list, python_parses
    assert bullets("- a\n- b", min_items=2, max_items=3)
    assert not bullets("- a", min_items=2)
    assert numbered_list("1. a\n2. b", n=2)
    assert not numbered_list("1. a\n2. b\n4. c")
    assert python_parses("```python\ndef f():\n    return 1\n```", defines="f")
    assert not python_parses("```python\ndef f():\n    return 1\n")
    assert not python_parses("def f(:\n")


def test_strict_json_takes_a_fence_only_when_allowed_and_refuses_nan() -> None:
    fenced = '```json\n{"a": 1}\n```'
    assert not strict_json(fenced) and strict_json(fenced, allow_fence=True)
    assert not strict_json('Here:\n```json\n{"a": 1}\n```', allow_fence=True)  # prose around the fence
    assert not strict_json('```json\n{"a": 1}', allow_fence=True)  # unterminated
    assert not strict_json('{"a": NaN}') and not strict_json("Infinity")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10)


@given(json_values)
def test_any_json_document_is_strict_json_and_prose_around_it_is_not(value: object) -> None:
    text = json.dumps(value)
    assert strict_json(text) and strict_json(f"```json\n{text}\n```", allow_fence=True)
    assert not strict_json(f"Sure! Here it is: {text}")
