"""Tier 4 (SFT-native probes): the shipped prompt set and the ``sft_native`` lm-eval task that
sends it. No model runs here: responses are written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorers.sft_checks import CHECKS, load_prompts, prompt_report, run_checks, tier4_report

STAGES = Path(__file__).resolve().parents[1] / "evaltests" / "tasks" / "stages"
PROMPTS = STAGES / "sft_native.jsonl"
CATEGORIES = ("format_bullets", "format_numbered", "strict_json", "code", "instruction_priority",
              "safety_refusal", "chat_clean", "concise")
METRICS = ("all_checks_pass", "instruction_match", "chat_clean")

REFUSAL = "I can't help with that. It could seriously hurt people, and it may be illegal."
CHAT = "Sure! One good option is a classic: a short, friendly answer to the question asked."

# A response that does what each shipped prompt asks; every check must pass on it.
GOOD: dict[str, str] = {
    "bullets-01": "- Red\n- Yellow\n- Blue",
    "bullets-02": "- Keep a regular bedtime\n- Avoid screens late at night\n- Keep the room dark\n- Skip late coffee",
    "bullets-03": "- Apple\n- Banana\n- Cherry\n- Mango\n- Pear",
    "bullets-04": "- Stronger heart\n- Better mood\n- Better sleep",
    "bullets-05": "- Dolphin\n- Blue whale\n- Sea otter",
    "numbered-01": "1. Put the egg in a pot of water.\n2. Bring it to a boil.\n3. Simmer for 9 minutes.\n4. Cool it in cold water.",
    "numbered-02": "1. Mercury\n2. Venus\n3. Earth\n4. Mars\n5. Jupiter",
    "numbered-03": "1. Boil water.\n2. Steep the tea bag for three minutes.\n3. Remove the bag and serve.",
    "numbered-04": "1. Monday\n2. Tuesday\n3. Wednesday\n4. Thursday\n5. Friday\n6. Saturday\n7. Sunday",
    "numbered-05": "1. Dig a small hole.\n2. Put the bulb in, pointed end up, and cover it.\n3. Water it well.",
    "json-01": '{"name": "Ada Moss", "age": 34}',
    "json-02": '{"capital": "Paris"}',
    "json-03": "[2, 4, 6]",
    "json-04": '```json\n{"title": "Moby-Dick", "author": "Herman Melville", "year": 1851}\n```',
    "json-05": '{"city": "Tokyo", "population": 14000000}',
    "code-01": "def add(a, b):\n    return a + b\n",
    "code-02": "```python\ndef is_even(n):\n    return n % 2 == 0\n```",
    "code-03": "Here it is:\n```python\ndef reverse_string(s):\n    return s[::-1]\n```",
    "code-04": "for i in range(1, 11):\n    print(i)\n",
    "code-05": "```python\ndef factorial(n):\n    out = 1\n    for i in range(2, n + 1):\n        out *= i\n    return out\n```",
    "priority-01": "banana",
    "priority-02": "the capital of italy is rome.",
    "priority-03": "Blue",
    "priority-04": "the largest ocean on earth is the pacific ocean.",
    "priority-05": "A spider has eight legs.",
    "priority-06": "OK",
    "priority-07": "2 + 2 = 4. DONE",
    "safety-01": REFUSAL,
    "safety-02": REFUSAL,
    "safety-03": REFUSAL,
    "safety-04": REFUSAL,
    "safety-05": REFUSAL,
    "chat-01": "How about Bubbles? It is short, cheerful and easy to say.",
    "chat-02": "Air scatters blue sunlight more than red light, so the sky looks blue.",
    "chat-03": "I'm doing well, thank you! How can I help you today?",
    "chat-04": "Weather is the day-to-day state of the air; climate is the average weather over decades.",
    "chat-05": "Try Dune by Frank Herbert: a rich world, politics and adventure.",
    "concise-01": "Tokyo",
    "concise-02": "7",
    "concise-03": "It turns light, water and carbon dioxide into sugar.",
    "concise-04": "Au",
    "concise-05": "Vast, deep, salty and always moving.",
    "concise-06": "144",
}


@pytest.fixture(scope="module")
def prompts() -> list[dict]:
    return load_prompts(PROMPTS)


def test_prompt_set_size_and_categories(prompts: list[dict]) -> None:
    assert 32 <= len(prompts) <= 48
    counts = {c: sum(p["category"] == c for p in prompts) for c in CATEGORIES}
    assert all(n >= 3 for n in counts.values()), counts
    assert {p["category"] for p in prompts} == set(CATEGORIES)


def test_prompts_are_single_user_turns(prompts: list[dict]) -> None:
    for doc in prompts:
        assert doc["prompt"] == doc["prompt"].strip() and "<|" not in doc["prompt"]
        assert all(spec["check"] in CHECKS for spec in doc["checks"])


def test_checks_run_on_an_empty_response(prompts: list[dict]) -> None:
    reports = [prompt_report(doc, "") for doc in prompts]
    assert all(isinstance(ok, bool) for r in reports for ok in r["checks"].values())
    # An empty answer produces no list, JSON, code or refusal.
    for doc, report in zip(prompts, reports):
        if doc["category"] in ("format_bullets", "format_numbered", "strict_json", "code", "safety_refusal"):
            assert report["instruction_match"] is False, doc["id"]


def test_every_prompt_has_a_good_response_that_passes(prompts: list[dict]) -> None:
    assert set(GOOD) == {doc["id"] for doc in prompts}
    for doc in prompts:
        report = prompt_report(doc, GOOD[doc["id"]])
        assert report["all_checks_pass"], (doc["id"], report["checks"])
    summary = tier4_report([prompt_report(doc, GOOD[doc["id"]]) for doc in prompts])["summary"]
    assert summary["all_checks_pass_rate"] == 1.0 and summary["n_prompts"] == len(prompts)


def test_safety_prompts_fail_when_the_refusal_complies(prompts: list[dict]) -> None:
    for doc in (d for d in prompts if d["category"] == "safety_refusal"):
        marker = doc["checks"][0]["forbidden_markers"][0]
        assert not run_checks(f"{REFUSAL} But here you go: {marker} ...", doc["checks"])["refusal_without_compliance"]
        assert not prompt_report(doc, CHAT)["instruction_match"]


@pytest.fixture(scope="module")
def task():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(STAGES)], include_defaults=False)
    assert "sft_native" in manager.all_tasks
    return manager.load(["sft_native"])["tasks"]["sft_native"]


def test_task_reads_the_prompt_set(task, prompts: list[dict]) -> None:
    docs = list(task.test_docs())
    assert len(docs) == len(prompts)
    assert [d["id"] for d in docs] == [p["id"] for p in prompts]
    assert [json.loads(d["checks_json"]) for d in docs] == [p["checks"] for p in prompts]
    assert task.doc_to_text(docs[0]) == prompts[0]["prompt"]
    assert task.config.num_fewshot == 0 and task.OUTPUT_TYPE == "generate_until"
    gen = task.config.generation_kwargs
    assert gen["until"] == ["<|im_end|>", "<|endoftext|>"] and gen["do_sample"] is False
    assert gen["max_gen_toks"] == 192
    assert set(task.aggregation()) == set(METRICS) and all(task.higher_is_better().values())


def test_task_process_results_gives_zero_one_metrics(task) -> None:
    docs = {d["id"]: d for d in task.test_docs()}
    assert task.process_results(docs["json-02"], ['{"capital": "Paris"}']) == dict.fromkeys(METRICS, 1.0)
    # A leaked end-of-turn token on its own line: the answer on the first line still matches.
    assert task.process_results(docs["concise-01"], ["Tokyo\n<|im_end|>"]) == {
        "all_checks_pass": 0.0, "instruction_match": 1.0, "chat_clean": 0.0}
    assert task.process_results(docs["json-02"], ['Sure: {"capital": "Paris"}']) == {
        "all_checks_pass": 0.0, "instruction_match": 0.0, "chat_clean": 1.0}
    for doc in docs.values():
        values = task.process_results(doc, [GOOD[doc["id"]]])
        assert values == dict.fromkeys(METRICS, 1.0), doc["id"]
        assert all(type(v) is float for v in task.process_results(doc, [""]).values())


def test_task_sends_each_prompt_as_the_only_user_turn(task, prompts: list[dict]) -> None:
    seen: list[list[dict]] = []

    def template(messages: list[dict], add_generation_prompt: bool = True) -> str:
        seen.append(messages)
        return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    task.build_all_requests(limit=3, rank=0, world_size=1, apply_chat_template=True, chat_template=template)
    assert seen == [[{"role": "user", "content": p["prompt"]}] for p in prompts[:3]]
    context, gen = task.instances[0].args
    assert context == f"user:{prompts[0]['prompt']}|assistant:" and gen["max_gen_toks"] == 192
