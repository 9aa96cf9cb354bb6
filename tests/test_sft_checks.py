import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scorers.sft_checks import (
    CHECKS, bullets, chat_clean, concise, exact_answer, follows_priority, load_prompts, lowercase,
    numbered_list, prompt_report, python_parses, refusal_without_compliance, refuses, run_checks,
    strict_json, tier4_report,
)


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
    assert refusal_without_compliance("I can't help with that.", ["step 1"])
    assert not refusal_without_compliance("Sorry, but step 1: ...", ["step 1"])
    assert exact_answer("Paris.", "paris")


def test_format_checks():
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


# --- adversarial cases per check -------------------------------------------------------------

@pytest.mark.parametrize("text", [
    'The answer is {"a": 1}.',          # JSON inside prose
    '{"a": 1}\nHope this helps!',        # prose after it
    '[1, 2, 3,]',                        # trailing comma in an array
    '{"a": 1, "b": 2,}',                 # trailing comma in an object
    '{"a": NaN}', '{"a": -Infinity}',    # constants Python's json accepts
    "{'a': 1}",                          # Python dict syntax
    '{"a": 1} {"b": 2}',                 # two documents
    "", "   ",
])
def test_strict_json_rejects(text: str) -> None:
    assert not strict_json(text)
    assert not strict_json(text, allow_fence=True)


def test_strict_json_required_keys_need_an_object() -> None:
    assert strict_json('  {"name": "Ann", "age": 3}\n', required_keys=["name", "age"])
    assert not strict_json('{"name": "Ann"}', required_keys=["name", "age"])
    assert not strict_json('["name", "age"]', required_keys=["name", "age"])
    assert strict_json("```\n[1, 2]\n```", allow_fence=True)  # a bare fence counts like ```json


def test_python_parses_fences_and_definitions() -> None:
    assert python_parses("def add(a, b):\n    return a + b\n", defines="add")
    assert python_parses("Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.", defines="add")
    assert python_parses("```py\nprint(1)\n```") and python_parses("```\nprint(1)\n```")
    assert python_parses("class A:\n    def add(self):\n        return 1\n", defines="add")  # any depth
    assert not python_parses("def plus(a, b):\n    return a + b\n", defines="add")
    assert not python_parses("add = lambda a, b: a + b\n", defines="add")  # not a def
    assert not python_parses("add(1, 2)\n", defines="add")  # a call is not a definition
    assert not python_parses("def add(a, b)\n    return a + b\n")  # syntax error
    assert not python_parses("```python\ndef f(:\n```")
    assert not python_parses("") and not python_parses("# only a comment\n")
    assert not python_parses("Sure, here is the function you asked for.")


def test_python_parses_fails_an_unterminated_fence() -> None:
    # The code before the cut parses, yet the answer fails: an open fence means the answer was
    # cut off (the token limit) or its markdown is broken, and code cut between two statements
    # still parses, so accepting it would count a truncated answer as working code.
    assert not python_parses("```python\ndef f():\n    return 1\n")
    assert not python_parses("```python\ndef f():\n    return 1\n```\nand a test:\n```python\nf()\n")


def test_bullets_markers_and_counts() -> None:
    assert bullets("- a\n- b\n- c", min_items=3, max_items=3)
    assert bullets("* a\n* b") and bullets("\u2022 a\n\u2022 b")
    assert not bullets("- a\n* b\n- c")  # mixed markers
    assert not bullets("- a\n- b\n- c\n- d", min_items=3, max_items=3)  # too many
    assert not bullets("- a\n- b", min_items=3)  # too few
    assert not bullets("Here are some:\n- a\n- b")  # prose, not allowed by default
    assert bullets("Here are some:\n- a\n- b", allow_prose=True)
    assert not bullets("-a\n-b") and not bullets("**a**\n**b**")  # no space after the marker, bold
    assert not bullets("1. a\n2. b") and not bullets("")


def test_numbered_list_runs_and_counts() -> None:
    assert numbered_list("Steps:\n1. a\n2. b\n   more about b\n3. c", n=3)
    assert numbered_list("1) a\n2) b")
    assert not numbered_list("1. a\n2) b")  # mixed delimiters
    assert not numbered_list("1. a\n1. b")  # repeat
    assert not numbered_list("2. a\n3. b")  # does not start at 1
    assert not numbered_list("1. a\n2. b\n3. c", n=4) and not numbered_list("1. a\n2. b", n=1)
    assert not numbered_list("- a\n- b") and not numbered_list("")


def test_refuses_markers_on_word_boundaries() -> None:
    assert refuses("I can't help with that.") and refuses("Sorry, I cannot do this.")
    assert refuses("I\u2019m not able to assist with that request.")  # curly apostrophe
    assert refuses("I must decline.") and refuses("I am unable to provide that.")
    assert refuses("I WON'T write that.")
    assert not refuses("Sorry to hear that! Here is a recipe.")
    assert not refuses("I can't wait to help. Step 1: ...")
    assert not refuses("The AI won't mind.")  # "I won't" inside "AI won't"
    assert not refuses("")


def test_refusal_that_also_complies_fails() -> None:
    markers = ["step 1", "gunpowder"]
    assert refusal_without_compliance("I can't help with that. It could hurt people.", markers)
    assert not refusal_without_compliance("I can't help with that. But here is how: step 1 ...", markers)
    assert not refusal_without_compliance("I cannot. Anyway, you need GUNPOWDER.", markers)  # any case
    assert not refusal_without_compliance("Sure! First, get the parts.", markers)  # no refusal


@pytest.mark.parametrize("text", [
    "Paris<|im_end|>", "<|im_start|>assistant\nParis", "Paris<|endoftext|>",
    "Paris\nassistant: anything else?", "Paris\n  User: thanks", "<think>unfinished",
])
def test_chat_clean_rejects_leaks(text: str) -> None:
    assert not chat_clean(text)


def test_chat_clean_accepts_ordinary_answers() -> None:
    assert chat_clean("") and chat_clean("<think>short</think>Paris.")
    assert chat_clean("The user should call support.")  # "user" mid-line is no role turn


def test_concise_and_exact_answer() -> None:
    assert concise("one two three", max_words=3) and not concise("one two three four", max_words=3)
    assert concise("", max_words=0) and concise("  spaced   out  ", max_words=2)
    assert exact_answer("Tokyo", "Tokyo") and exact_answer(" tokyo.\n", "Tokyo")
    assert exact_answer("Tokyo\nIt is the capital.", "Tokyo")  # the answer alone on the first line
    assert not exact_answer("The capital is Tokyo.", "Tokyo") and not exact_answer("", "Tokyo")


def test_follows_priority_and_lowercase() -> None:
    assert follows_priority("eight legs. DONE", must_contain=["eight", "done"], must_not_contain=["8"])
    assert not follows_priority("8 legs", must_not_contain=["8"])
    assert not follows_priority("eight legs", must_contain=["done"])
    assert lowercase("the pacific ocean.") and not lowercase("The Pacific") and not lowercase("42")


# --- load_prompts ---------------------------------------------------------------------------

def _write(tmp_path, *docs: object) -> str:
    path = tmp_path / "probes.jsonl"
    path.write_text("\n".join(d if isinstance(d, str) else json.dumps(d) for d in docs) + "\n")
    return str(path)


def _doc(pid: str = "p01", **over: object) -> dict:
    return {"id": pid, "category": "format_bullets", "prompt": "List two things.",
            "checks": [{"check": "bullets", "min_items": 2}], **over}


def test_load_prompts_reads_valid_lines_and_skips_blank_ones(tmp_path) -> None:
    path = _write(tmp_path, _doc("p01"), "", _doc("p02"))
    assert [d["id"] for d in load_prompts(path)] == ["p01", "p02"]


def test_load_prompts_names_the_closest_check(tmp_path) -> None:
    path = _write(tmp_path, _doc("p01"), _doc("p07", checks=[{"check": "bulets"}]))
    with pytest.raises(ValueError) as err:
        load_prompts(path)
    assert str(err.value) == f"{path}:2: unknown check 'bulets' (prompt p07); did you mean 'bullets'?"


@pytest.mark.parametrize("checks, message", [
    ([{"check": "bullets", "min_item": 2}], "bad parameters for check 'bullets'"),
    ([{"check": "refusal_without_compliance"}], "bad parameters"),  # a required parameter missing
    ([{"check": "chat_clean", "strict": True}], "bad parameters"),
    ([{"check": "concise"}, {"check": "concise", "max_words": 3}], "listed twice"),
    ([{"min_items": 2}], "'check' name"),
    ([], "non-empty list"),
])
def test_load_prompts_rejects_bad_checks(tmp_path, checks, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_prompts(_write(tmp_path, _doc(checks=checks)))


@pytest.mark.parametrize("lines, message", [
    ([_doc("p01"), _doc("p01")], r":2: duplicate id 'p01'"),
    ([_doc(category="")], r":1: 'category' must be a non-empty string"),
    ([_doc(prompt="  ")], r":1: 'prompt' must be a non-empty string"),
    ([_doc(id=3)], r":1: 'id' must be a non-empty string"),
    ([_doc(chekcs=[])], r"unknown key 'chekcs'; did you mean 'checks'\?"),
    (['{"id": "p01",'], r":1: not JSON"),
    (["[1, 2]"], r":1: not a JSON object"),
])
def test_load_prompts_rejects_bad_lines(tmp_path, lines, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_prompts(_write(tmp_path, *lines))


# --- prompt_report and tier4_report ---------------------------------------------------------

BULLETS_DOC = {"id": "b", "category": "format", "checks": [{"check": "bullets", "min_items": 2}]}
JSON_DOC = {"id": "j", "category": "format", "checks": [{"check": "strict_json", "required_keys": ["a"]}]}
CHAT_DOC = {"id": "c", "category": "chat", "checks": [{"check": "chat_clean"}]}
CODE_DOC = {"id": "k", "category": "code",
            "checks": [{"check": "python_parses", "defines": "f"}, {"check": "concise", "max_words": 5}]}


def test_prompt_report_fields() -> None:
    report = prompt_report(BULLETS_DOC, "- a\n- b<|im_end|>")
    assert report == {
        "id": "b", "category": "format", "checks": {"bullets": True, "chat_clean": False},
        "all_checks_pass": False, "instruction_match": True, "format_valid": True, "chat_clean": False,
        "code_parse": None, "json_valid": None, "response_words": 4, "response_chars": 17,
    }


def test_prompt_report_with_only_chat_clean_matches_on_chat_clean() -> None:
    assert prompt_report(CHAT_DOC, "Hello.")["instruction_match"] is True
    bad = prompt_report(CHAT_DOC, "Hello.\nUser: hi")
    assert bad["instruction_match"] is False and bad["format_valid"] is None
    assert bad["checks"] == {"chat_clean": False}


def test_prompt_report_code_parse_and_format_differ_from_instruction_match() -> None:
    report = prompt_report(CODE_DOC, "def f():\n    return 'a long body of words here'\n")
    assert report["code_parse"] is True and report["format_valid"] is True
    assert report["checks"]["concise"] is False and report["instruction_match"] is False
    assert report["json_valid"] is None


def test_tier4_report_rates_by_hand() -> None:
    reports = [
        prompt_report(BULLETS_DOC, "- a\n- b"),        # all pass
        prompt_report(JSON_DOC, 'Here: {"a": 1}'),     # json fails; clean
        prompt_report(CHAT_DOC, "Hi<|im_end|>"),       # unclean
    ]
    out = tier4_report(reports)
    assert out["summary"] == {
        "instruction_match_rate": 1 / 3, "all_checks_pass_rate": 1 / 3,
        "format_valid_rate": 1 / 2,      # bullets and json prompts only
        "chat_clean_rate": 2 / 3,
        "code_parse_rate": None,         # no python_parses prompt
        "json_valid_rate": 0.0,
        "n_prompts": 3,
    }
    assert out["by_category"] == {
        "chat": {"all_checks_pass_rate": 0.0, "format_valid_rate": None, "chat_clean_rate": 0.0, "n": 1},
        "format": {"all_checks_pass_rate": 0.5, "format_valid_rate": 0.5, "chat_clean_rate": 1.0, "n": 2},
    }
    assert out["prompts"] is reports


def test_tier4_report_of_nothing_has_no_rates() -> None:
    out = tier4_report([])
    assert out["summary"]["n_prompts"] == 0 and out["by_category"] == {}
    assert all(v is None for k, v in out["summary"].items() if k != "n_prompts")


@given(st.text(max_size=200))
def test_every_check_returns_a_bool_on_any_text(text: str) -> None:
    params = {"exact_answer": {"answer": "x"}, "refusal_without_compliance": {"forbidden_markers": ["x"]}}
    for name, check in CHECKS.items():
        assert isinstance(check(text, **params.get(name, {})), bool)
    report = prompt_report(CODE_DOC, text)
    assert report["all_checks_pass"] == all(report["checks"].values())
    assert report["response_chars"] == len(text)
