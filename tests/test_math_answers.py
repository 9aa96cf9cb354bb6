"""Tests for ``scorers.math_answers``: answer extraction, normalisation and math-verify equivalence."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorers.math_answers import extract_answer, extract_boxed, is_equiv, normalize, score

# ---------------------------------------------------------------------------------------------
# extract_boxed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"So the answer is $\boxed{5}$.", "5"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\frac{\sqrt{3}}{2^{2}}}", r"\frac{\sqrt{3}}{2^{2}}"),
        (r"First \boxed{3}, then corrected: \boxed{4}.", "4"),
        (r"\fbox{7}", "7"),
        (r"$\boxed 5$", "5"),
        (r"\boxed {12}", "12"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{ (1, 2) }", "(1, 2)"),
        ("no box here", None),
        (r"\boxed{\frac{1}{2}", None),
        (r"\boxed{3} and then \boxed{", None),
        (r"\boxedx", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


# ---------------------------------------------------------------------------------------------
# extract_answer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Adding, we get $2+3=5$, so the answer is $\\boxed{5}$.", "5"),
        ("The answer is 5. I hope it is correct.", "5"),
        ("Thus the final answer is $\\frac{3}{4}$. I hope it is correct.", r"\frac{3}{4}"),
        ("The answer is: 12", "12"),
        ("the answer is **7**", "7"),
        ("The answer is 3.5.", "3.5"),
        ("The answer is -2.\nQuestion: next one", "-2"),
        ("The answer is 4. Wait, no. The answer is 6.", "6"),
        ("The answer is $\\$1.50$.", r"\$1.50"),
        ("The answer is 1. So the answer is \\boxed{2}", "2"),
        ("I do not know.", None),
        ("The answer is", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


# ---------------------------------------------------------------------------------------------
# normalize
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  5  ", "5"),
        ("$5$", "5"),
        ("5.", "5"),
        ("1,234", "1234"),
        ("-1,234,567.5", "-1234567.5"),
        ("1{,}000", "1000"),
        ("(1,2)", "(1,2)"),
        ("1,2", "1,2"),
        ("12,34", "12,34"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"\dfrac{1}{2}", r"\frac{1}{2}"),
        (r"\tfrac12", r"\frac12"),
        (r"5 \text{ cm}", "5"),
        (r"5\text{ cm}^2", "5"),
        (r"10 \mbox{ inches}.", "10"),
        (r"\text{Evelyn}", "Evelyn"),
        (r"30^\circ", "30"),
        (r"30^{\circ}", "30"),
        ("30°", "30"),
        (r"50\%", "50"),
        (r"x = 3", "3"),
        (r"y=2x+1", "2x+1"),
        (r"\theta = \frac{\pi}{4}", r"\frac{\pi}{4}"),
        ("x=1, y=2", "x=1,y=2"),
        (r"1\,000", "1000"),
        (r"3\!\cdot\!4", r"3\cdot4"),
        (r"\pi r^2", r"\pi r^2"),
        ("\u22125", "-5"),
        ("104 cm", "104"),
        ("5 square units", "5"),
        ("60 km/h", "60"),
        (r"\frac{1}{2} inches", r"\frac{1}{2}"),
        ("5t", "5t"),  # single letters are variables, not units
        (r"\pi r^2 h", r"\pi r^2h"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


# ---------------------------------------------------------------------------------------------
# is_equiv: known answers and hard cases
# ---------------------------------------------------------------------------------------------

EQUIVALENT = [
    ("5", "5"),
    ("0.5", r"\frac{1}{2}"),
    (r"\frac{1}{2}", "0.5"),
    (".5", r"\frac12"),
    ("1/2", r"\frac{1}{2}"),
    (r"\dfrac{3}{4}", r"\frac{3}{4}"),
    (r"\tfrac{3}{4}", "0.75"),
    (r"\sqrt{8}", r"2\sqrt{2}"),
    (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}"),
    (r"\sqrt{3+2\sqrt{2}}", r"1+\sqrt{2}"),
    (r"\sqrt[3]{8}", "2"),
    (r"2\pi", r"\pi \cdot 2"),
    (r"\frac{\pi}{2}", r"\pi/2"),
    ("3.14159265359", r"\pi"),
    ("1,234", "1234"),
    ("1,000,000", "1000000"),
    ("-7", "-7"),
    ("-7", "-7.0"),
    (r"-\frac{1}{2}", r"\frac{-1}{2}"),
    ("-3", "(-3)"),
    (r"5 \text{ cm}", "5"),
    (r"12\text{ inches}^2", "12"),
    (r"90^\circ", "90"),
    (r"x = 4", "4"),
    (r"\left( 1, 2 \right)", "(1,2)"),
    (r"\left[ -1, \frac{1}{2} \right)", "[-1, 0.5)"),
    (r"(-\infty, 3]", r"(-\infty,3]"),
    (r"\{3, 1, 2\}", r"\{1,2,3\}"),
    ("(2, \\frac{1}{2})", "(2,0.5)"),
    ("x^2+2x+1", "(x+1)^2"),
    (r"\frac{x}{2}", "0.5x"),
    (r"\sin^2 x + \cos^2 x", "1"),
    (r"2^{10}", "1024"),
    ("3+4i", "4i+3"),
    (r"\$5.00", "5"),
    (r"\binom{5}{2}", "10"),
    ("5!", "120"),
    # Beyond the forms above, math-verify also gets these right:
    ("104 cm", "104"),
    (r"6 \pi cm", r"6\pi"),
    (r"3\frac{1}{2}", r"\frac{7}{2}"),  # a mixed number, not 3 * 1/2
    ("2, 7, -2", "-2, 2, 7"),  # a list of solutions, in any order
    (r"\{1, 2\}", "1, 2"),
    (r"\pm 3", "3, -3"),
    (r"(2,\infty)\cup(-\infty,1)", r"(-\infty,1)\cup(2,\infty)"),
    (r"\begin{bmatrix} 1 \\ 2 \end{bmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"\begin{pmatrix} \frac{4}{2} \\ 1 \end{pmatrix}", r"\begin{pmatrix}2\\1\end{pmatrix}"),
    ("x^2+y^2=1", "y^2+x^2=1"),
    ("x > 2", "2 < x"),
    (r"\lfloor 2.5 \rfloor", "2"),
    # "i" is the imaginary unit:
    (r"\sqrt{-4}", "2i"),
    ("i^2", "-1"),
    ("(1+i)^2", "2i"),
    (r"\frac{1}{i}", "-i"),
]

NOT_EQUIVALENT = [
    ("5", "6"),
    ("0.333", r"\frac{1}{3}"),
    ("0.33", r"\frac13"),
    ("10000000", "10000001"),
    ("(1,2)", "(2,1)"),
    ("(1,2)", "[1,2]"),
    ("(1,2]", "(1,2)"),
    ("(1,2)", "12"),
    ("(1,2)", "(1,2,3)"),
    (r"\{1,2\}", r"\{1,3\}"),
    (r"\sqrt{8}", r"3\sqrt{2}"),
    ("3.14", r"\pi"),
    ("-5", "5"),
    ("x+1", "x-1"),
    (r"\pm 3", "3"),
    ("", "5"),
    ("5", ""),
    ("\\infty", "-\\infty"),
    ("hello", "5"),
    ("5t", "5"),  # a variable is not a unit
    (r"\pi r^2 h", r"\pi r^2"),
    ("(1,2)", r"\{1,2\}"),  # a set is neither a pair nor an interval
    ("[1,2]", r"\{1,2\}"),
    (r"3\frac{1}{2}", r"\frac{3}{2}"),
    ("3-4i", "3+4i"),
    ("i", "-i"),
    (r"1\,000", "0"),
    ("5}", "5"),  # unbalanced: would end the box early
    ("2, 3", "2, 3, 4"),
]


@pytest.mark.parametrize(("prediction", "target"), EQUIVALENT)
def test_equivalent(prediction: str, target: str) -> None:
    assert is_equiv(prediction, target)
    assert is_equiv(target, prediction)


@pytest.mark.parametrize(("prediction", "target"), NOT_EQUIVALENT)
def test_not_equivalent(prediction: str, target: str) -> None:
    assert not is_equiv(prediction, target)
    assert not is_equiv(target, prediction)


def test_none_prediction_is_never_equivalent() -> None:
    assert not is_equiv(None, "5")
    assert not is_equiv(None, "")


def test_unsupported_latex_still_matches_itself() -> None:
    assert is_equiv(r"\pm \sqrt{2}", r"\pm\sqrt{2}")
    assert is_equiv(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}")


@pytest.mark.parametrize(
    ("prediction", "target"),
    [
        ("9^{9^{9}}", "1"),
        ("10^{10^{10}}", "10^{10^{10}}+1"),
        ("100000!", "1"),
        ("(x+y+z)^{60}", "(x+y+2)^{60}"),
        (r"\sin(x)^{50}+\cos(x+y)^{40}", r"\tan(x)^{30}"),
        ("(" * 150 + "1" + ")" * 150, "2"),
        (r"\frac{" * 80, "1"),
        ("1" * 201, "1" * 200 + "0"),
        ("2^{2^{2^{2^{2^{2}}}}}", "2"),
        ("99999999!", "2"),
    ],
)
def test_pathological_inputs_neither_raise_nor_hang(prediction: str, target: str) -> None:
    started = time.monotonic()
    assert is_equiv(prediction, target) is False
    assert time.monotonic() - started < 10


def test_pathological_inputs_do_not_hang_off_the_main_thread() -> None:
    """Off the main thread there is no timer, only the size limits: they must suffice.

    Run in a child process, since a thread stuck in sympy's big-integer arithmetic holds the
    GIL and could not be timed out from this one.
    """
    cases = test_pathological_inputs_neither_raise_nor_hang.pytestmark[0].args[1]
    script = textwrap.dedent(
        f"""
        import threading, time
        from scorers.math_answers import is_equiv
        slowest, verdicts = 0.0, []
        def run():
            global slowest
            for prediction, target in {cases!r}:
                started = time.monotonic()
                verdicts.append(is_equiv(prediction, target))
                slowest = max(slowest, time.monotonic() - started)
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        print(verdicts.count(False), len(verdicts), round(slowest, 2))
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    false_count, total, slowest = done.stdout.split()
    assert int(false_count) == int(total) == len(cases)
    assert float(slowest) < 10


def test_same_verdicts_off_the_main_thread() -> None:
    """math-verify's own timeouts use signal.alarm, which fails off the main thread; ours are
    off there, and the verdicts are the same."""
    pairs = EQUIVALENT + NOT_EQUIVALENT
    verdicts: list[bool] = []
    worker = threading.Thread(target=lambda: verdicts.extend(is_equiv(p, t) for p, t in pairs))
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert verdicts == [is_equiv(p, t) for p, t in pairs]
    assert verdicts == [True] * len(EQUIVALENT) + [False] * len(NOT_EQUIVALENT)


def test_a_running_interval_timer_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    """Someone else's SIGALRM timer (pytest-timeout's, say) keeps running through a comparison,
    and math-verify logs nothing about its disabled timeouts."""
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 1000.0)
    try:
        with caplog.at_level(logging.DEBUG):
            assert is_equiv(r"\sqrt{8}", r"2\sqrt{2}")
            assert not is_equiv("x+1", "x-1")
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 1000.0
        assert signal.getsignal(signal.SIGALRM) is handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not fired
    assert not [r for r in caplog.records if "imeout" in r.getMessage()]


# ---------------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------------


def test_score() -> None:
    generation = (
        "We have $x = \\frac{2}{4}$, so at first \\boxed{\\frac{2}{4}}; simplified, "
        "the answer is $\\boxed{\\dfrac{1}{2}}$."
    )
    assert score(generation, "0.5") == 1.0
    assert score(generation, r"\frac{1}{3}") == 0.0
    assert score("The answer is 1,024.", "1024") == 1.0
    assert score("The final answer is $45^\\circ$. I hope it is correct.", "45") == 1.0
    assert score("I cannot solve this.", "3") == 0.0
    assert score(r"\boxed{\frac{1}{2}", "0.5") == 0.0
    assert isinstance(score("\\boxed{1}", "1"), float)


# ---------------------------------------------------------------------------------------------
# Hypothesis properties over small integer/fraction expressions
# ---------------------------------------------------------------------------------------------

Tokens = tuple[str, ...]


def _frac_latex(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


_integers = st.integers(min_value=0, max_value=30).map(lambda n: ((str(n),), Fraction(n)))
_negatives = st.integers(min_value=1, max_value=30).map(lambda n: (("(", "-", str(n), ")"), Fraction(-n)))
_fractions = st.tuples(st.integers(0, 20), st.integers(1, 12)).map(
    lambda pq: (("\\frac", "{", str(pq[0]), "}", "{", str(pq[1]), "}"), Fraction(pq[0], pq[1]))
)
_leaves = st.one_of(_integers, _negatives, _fractions)


def _combine(children: st.SearchStrategy[tuple[Tokens, Fraction]]) -> st.SearchStrategy[tuple[Tokens, Fraction]]:
    def build(left: tuple[Tokens, Fraction], op: str, right: tuple[Tokens, Fraction]) -> tuple[Tokens, Fraction]:
        (lt, lv), (rt, rv) = left, right
        value = {"+": lv + rv, "-": lv - rv, "\\cdot": lv * rv}[op]
        return ("(", *lt, op, *rt, ")"), value

    return st.builds(build, children, st.sampled_from(["+", "-", "\\cdot"]), children)


expressions = st.recursive(_leaves, _combine, max_leaves=5)
_whitespace = st.sampled_from(["", " ", "  ", "\t", "\n"])


def _spaced(tokens: Tokens, gaps: list[str]) -> str:
    out = []
    for i, token in enumerate(tokens):
        out.append(token)
        out.append(gaps[i % len(gaps)])
    return "".join(out)


def _left_right(tokens: Tokens) -> Tokens:
    return tuple({"(": "\\left(", ")": "\\right)"}.get(token, token) for token in tokens)


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@PROPERTY_SETTINGS
@given(expressions)
def test_reflexive(expr: tuple[Tokens, Fraction]) -> None:
    text = "".join(expr[0])
    assert is_equiv(text, text)


@PROPERTY_SETTINGS
@given(expressions)
def test_equivalent_to_its_value(expr: tuple[Tokens, Fraction]) -> None:
    tokens, value = expr
    assert is_equiv("".join(tokens), _frac_latex(value))
    assert not is_equiv("".join(tokens), _frac_latex(value + Fraction(1, 7)))


@PROPERTY_SETTINGS
@given(expressions, expressions)
def test_symmetric(a: tuple[Tokens, Fraction], b: tuple[Tokens, Fraction]) -> None:
    a_text, b_text = "".join(a[0]), "".join(b[0])
    assert is_equiv(a_text, b_text) == is_equiv(b_text, a_text)
    assert is_equiv(a_text, b_text) == (a[1] == b[1])


@PROPERTY_SETTINGS
@given(expressions, st.lists(_whitespace, min_size=1, max_size=8))
def test_invariant_to_whitespace(expr: tuple[Tokens, Fraction], gaps: list[str]) -> None:
    tokens, value = expr
    tight, spaced = "".join(tokens), _spaced(tokens, gaps)
    assert is_equiv(spaced, tight)
    assert is_equiv(spaced, _frac_latex(value))
    assert is_equiv(_frac_latex(value), spaced)


@PROPERTY_SETTINGS
@given(expressions)
def test_invariant_to_left_right(expr: tuple[Tokens, Fraction]) -> None:
    tokens, value = expr
    wrapped = " ".join(_left_right(tokens))
    assert is_equiv(wrapped, "".join(tokens))
    assert is_equiv(wrapped, _frac_latex(value))
    assert not is_equiv(wrapped, _frac_latex(value + 1))


@PROPERTY_SETTINGS
@given(st.integers(-10**6, 10**6), st.integers(0, 6))
def test_terminating_decimals_equal_their_fractions(numerator: int, twos_fives: int) -> None:
    value = Fraction(numerator, 2**twos_fives * 5 ** (6 - twos_fives))
    assert is_equiv(f"{float(value):.6f}", _frac_latex(value))


_LATEXISH = st.text(alphabet="0123456789+-*/^_{}()[],.=$ \\xyfracsqrtpiboxedleftright!|", max_size=40)


@settings(max_examples=150, deadline=None)
@given(_LATEXISH, _LATEXISH)
def test_never_raises(a: str, b: str) -> None:
    assert isinstance(is_equiv(a, b), bool)
    assert isinstance(score(a, b), float)
    normalize(a)
    extract_answer(a)
