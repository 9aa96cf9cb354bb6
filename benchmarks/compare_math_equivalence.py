"""Compare two implementations of ``scorers.math_answers.is_equiv`` over a corpus of answer pairs.

    .venv/bin/python benchmarks/compare_math_equivalence.py [--old PATH] [--all] [--json OUT]
        [--unit-tests PATH]

The corpus is a list of (prediction, reference) final-answer pairs, each with the verdict a
careful human grader would give where that is clear-cut (``True``/``False``) or ``None`` where
graders disagree (e.g. "25%" against "0.25"):

  fixture    every reference answer of the MATH-style fixture datasets (tests/fixtures/datasets:
             math_qwen_*, hendrycks_math_*, minerva_math_*) against itself, against reformatted
             variants of itself, against the worked expression its solution equates it with
             ("2^4 = \\boxed{16}"), and against every other distinct answer;
  unit_test  the equivalent / not-equivalent / pathological pairs of tests/test_math_answers.py
             (or of the test module given with --unit-tests), in both directions;
  generated  a few hundred pairs from fixed-seed generators: fractions and decimals, \\dfrac,
             radicals, intervals, sets, tuples, units, degrees, percentages, negative numbers,
             scientific notation, matrices, equations, thousands separators, multiples of pi,
             polynomials, mixed numbers, text answers, and near misses of each.

``is_equiv(prediction, reference)`` of the working tree's ``scorers.math_answers`` (NEW) is run on
every pair; with ``--old PATH`` the module at PATH (an earlier ``math_answers.py``) is loaded with
importlib and run too (OLD). Printed: every pair where OLD and NEW disagree (with the expected
verdict, when there is one), every pair where NEW contradicts the expected verdict (with
``--all``, every pair), and a summary. The exit status is 0 whatever the verdicts: this is a
report, not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from scorers import math_answers as new_module  # noqa: E402

FIXTURE_DIR = ROOT / "tests" / "fixtures" / "datasets"
FIXTURE_PREFIXES = ("math_qwen_", "hendrycks_math_", "minerva_math_")
UNIT_TESTS = ROOT / "tests" / "test_math_answers.py"
SEED = 20240611


@dataclass(frozen=True)
class Pair:
    source: str  # fixture / unit_test / generated:<family>
    prediction: str
    reference: str
    expected: bool | None  # None: no clear-cut verdict


# ---------------------------------------------------------------------------------------------
# (a) fixture answers
# ---------------------------------------------------------------------------------------------


def _fixture_solutions() -> list[str]:
    solutions: list[str] = []
    for folder in sorted(FIXTURE_DIR.iterdir()):
        if not folder.name.startswith(FIXTURE_PREFIXES):
            continue
        for split in sorted(folder.glob("*.jsonl")):
            for line in split.read_text().splitlines():
                if line.strip():
                    solutions.append(json.loads(line)["solution"])
    return solutions


def _variants(answer: str) -> list[str]:
    """Reformattings a grader would accept as the same answer."""
    out = [f" {answer} ", f"${answer}$", f"{answer}.", f"\\left({answer}\\right)", f"{{{answer}}}"]
    if answer.lstrip("-").isdigit():
        n = int(answer)
        out += [f"{n}.0", f"{n}.00", f"\\frac{{{2 * n}}}{{2}}", f"{n} \\text{{ units}}", f"x = {n}"]
    if answer.startswith("\\frac{"):
        num, den = answer[len("\\frac{") : -1].split("}{")
        out += [answer.replace("\\frac", "\\dfrac"), answer.replace("\\frac", "\\tfrac"), f"{num}/{den}"]
        if len(num) == len(den) == 1:
            out.append("\\frac" + num + den)
        out.append(str(float(Fraction(int(num), int(den)))))
    if "\\pi" in answer:
        out += [answer.replace("\\pi", " \\pi"), answer.replace("\\pi", "\\cdot\\pi")]
    if "." in answer:
        out += [answer + "0", answer + "00"]
    return list(dict.fromkeys(v for v in out if v != answer))


def _expression_sides(solution: str) -> Iterator[str]:
    """The worked expression a solution writes just before ``= \\boxed{...}``."""
    head, sep, _ = solution.partition("= \\boxed{")
    if sep and "$" in head:
        expr = head[head.rindex("$") + 1 :].strip()
        if expr and not expr.isalpha():  # "$x = \\boxed{4}$" names the unknown, it is no value
            yield expr


def fixture_pairs() -> list[Pair]:
    solutions = _fixture_solutions()
    answers: list[str] = []
    expressions: list[tuple[str, str]] = []
    for solution in solutions:
        answer = new_module.extract_boxed(solution)
        assert answer is not None, solution
        if answer not in answers:
            answers.append(answer)
        for expr in _expression_sides(solution):
            if (expr, answer) not in expressions:
                expressions.append((expr, answer))
    pairs = [Pair("fixture", a, a, True) for a in answers]
    pairs += [Pair("fixture", v, a, True) for a in answers for v in _variants(a)]
    pairs += [Pair("fixture", e, a, True) for e, a in expressions]
    pairs += [Pair("fixture", a, b, False) for a in answers for b in answers if a != b]
    return pairs


# ---------------------------------------------------------------------------------------------
# (b) unit-test cases
# ---------------------------------------------------------------------------------------------


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def unit_test_pairs(path: Path = UNIT_TESTS) -> list[Pair]:
    tests = _load("_math_answer_unit_tests", path)
    pairs: list[Pair] = []
    for a, b in tests.EQUIVALENT:
        pairs += [Pair("unit_test", a, b, True), Pair("unit_test", b, a, True)]
    for a, b in tests.NOT_EQUIVALENT:
        pairs += [Pair("unit_test", a, b, False), Pair("unit_test", b, a, False)]
    for mark in getattr(tests.test_pathological_inputs_neither_raise_nor_hang, "pytestmark", []):
        if mark.name == "parametrize":
            pairs += [Pair("unit_test", a, b, False) for a, b in mark.args[1]]
    pairs += [
        Pair("unit_test", r"\pm \sqrt{2}", r"\pm\sqrt{2}", True),
        Pair("unit_test", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", True),
    ]
    return pairs


# ---------------------------------------------------------------------------------------------
# (c) generated pairs
# ---------------------------------------------------------------------------------------------

Generator = Callable[[random.Random], list[tuple[str, str, bool | None]]]
GENERATORS: dict[str, Generator] = {}


def generator(name: str) -> Callable[[Generator], Generator]:
    def register(fn: Generator) -> Generator:
        GENERATORS[name] = fn
        return fn

    return register


def _frac(p: int, q: int, cmd: str = "\\frac") -> str:
    sign = "-" if p * q < 0 else ""
    return f"{sign}{cmd}{{{abs(p)}}}{{{abs(q)}}}"


def _terminating_fraction(rng: random.Random) -> Fraction:
    while True:
        q = rng.choice([2, 4, 5, 8, 10, 16, 20, 25, 40, 50, 80, 125])
        p = rng.randint(1, 3 * q)
        value = Fraction(p, q)
        if value.denominator != 1:
            return value


@generator("fraction_decimal")
def _fraction_decimal(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(14):
        v = _terminating_fraction(rng)
        frac = _frac(v.numerator, v.denominator)
        dec = f"{float(v):.10f}".rstrip("0")
        out.append((dec, frac, True))
        out.append((frac, dec, True))
        out.append((f"{float(v) + 0.01:.10f}".rstrip("0"), frac, False))
    for q in (3, 6, 7, 9, 11, 12):
        p = rng.randint(1, q - 1)
        while Fraction(p, q).denominator == 1:
            p = rng.randint(1, q - 1)
        v = Fraction(p, q)
        frac = _frac(v.numerator, v.denominator)
        out.append((f"{float(v):.2f}", frac, False))  # a 2-digit rounding is not the fraction
        out.append((f"{float(v):.3f}", frac, False))
        out.append((f"{float(v):.6f}", frac, None))  # 6 digits: some graders accept
        out.append((f"{float(v):.12f}", frac, True))  # 12 digits: the fraction to display precision
    return out


@generator("frac_forms")
def _frac_forms(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(12):
        q = rng.randint(2, 15)
        p = rng.randint(1, 30)
        while Fraction(p, q).denominator == 1:
            p = rng.randint(1, 30)
        v = Fraction(p, q)
        ref = _frac(v.numerator, v.denominator)
        out.append((_frac(v.numerator, v.denominator, "\\dfrac"), ref, True))
        out.append((_frac(v.numerator, v.denominator, "\\tfrac"), ref, True))
        out.append((f"{v.numerator}/{v.denominator}", ref, True))
        out.append((_frac(2 * v.numerator, 2 * v.denominator), ref, True))  # unreduced
        out.append((_frac(v.denominator, v.numerator), ref, v == Fraction(v.denominator, v.numerator)))
        out.append((_frac(-v.numerator, v.denominator), ref, False))
        if v.numerator < 10 and v.denominator < 10:
            out.append((f"\\frac{v.numerator}{v.denominator}", ref, True))
    return out


@generator("radicals")
def _radicals(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(12):
        n = rng.choice([2, 3, 5, 6, 7, 10, 11])
        k = rng.randint(2, 6)
        ref = f"{k}\\sqrt{{{n}}}"
        out.append((f"\\sqrt{{{n * k * k}}}", ref, True))
        out.append((f"{k} \\sqrt {n}" if n < 10 else f"{k}\\sqrt{{{n}}}", ref, True))
        out.append((f"\\sqrt{{{n}}} \\cdot {k}", ref, True))
        out.append((f"\\sqrt{{{n * (k + 1) ** 2}}}", ref, False))
        out.append((f"{k}\\sqrt{{{n + 1}}}", ref, False))
        out.append((f"\\frac{{{k}}}{{\\sqrt{{{n}}}}}", f"\\frac{{{k}\\sqrt{{{n}}}}}{{{n}}}", True))
        out.append((f"{k * n ** 0.5:.8f}", ref, True))
        out.append((f"{k * n ** 0.5:.2f}", ref, False))
    out.append((r"\sqrt[3]{27}", "3", True))
    out.append((r"\sqrt[3]{16}", r"2\sqrt[3]{2}", True))
    out.append((r"\sqrt{2}+\sqrt{3}", r"\sqrt{5+2\sqrt{6}}", True))
    out.append((r"\sqrt{2}+\sqrt{3}", r"\sqrt{5}", False))
    return out


def _endpoint(rng: random.Random) -> tuple[str, Fraction | None]:
    kind = rng.random()
    if kind < 0.6:
        n = rng.randint(-9, 9)
        return str(n), Fraction(n)
    if kind < 0.85:
        v = Fraction(rng.randint(-9, 9), rng.choice([2, 3, 4]))
        return (_frac(v.numerator, v.denominator) if v.denominator != 1 else str(v.numerator)), v
    return "\\sqrt{2}", None


@generator("intervals")
def _intervals(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(14):
        ends = [_endpoint(rng), _endpoint(rng)]
        (a, _), (b, _) = sorted(ends, key=lambda e: float(e[1]) if e[1] is not None else 2**0.5)
        if a == b:
            continue
        left, right = rng.choice("(["), rng.choice(")]")
        ref = f"{left}{a},{b}{right}"
        out.append((f"\\left{left} {a}, {b} \\right{right}", ref, True))
        out.append((f"{left}{a}, \\ {b}{right}", ref, True))
        other_left = "[" if left == "(" else "("
        out.append((f"{other_left}{a},{b}{right}", ref, False))
        out.append((f"{left}{b},{a}{right}", ref, False))
    out += [
        (r"(-\infty, 3]", r"(-\infty,3]", True),
        (r"(-\infty,3)", r"(-\infty,3]", False),
        (r"[2,\infty)", r"[2, \infty)", True),
        (r"x \in [2,\infty)", r"[2, \infty)", None),
        (r"(-\infty,1)\cup(2,\infty)", r"(-\infty, 1) \cup (2, \infty)", True),
        (r"(2,\infty)\cup(-\infty,1)", r"(-\infty, 1) \cup (2, \infty)", True),
        (r"(-\infty,1]\cup(2,\infty)", r"(-\infty, 1) \cup (2, \infty)", False),
        (r"(-\infty, \infty)", r"\mathbb{R}", None),
        (r"x \ge 2", r"[2,\infty)", None),
        (r"(0.5, 2]", r"\left(\frac12, 2\right]", True),
    ]
    return out


@generator("sets")
def _sets(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(12):
        items = rng.sample(range(-9, 10), rng.randint(2, 4))
        ref = "\\{" + ",".join(map(str, sorted(items))) + "\\}"
        shuffled = items[:]
        rng.shuffle(shuffled)
        out.append(("\\{" + ", ".join(map(str, shuffled)) + "\\}", ref, True))
        out.append((", ".join(map(str, shuffled)), ", ".join(map(str, sorted(items))), True))  # bare lists of roots
        changed = shuffled[:]
        changed[0] += 20
        out.append(("\\{" + ",".join(map(str, changed)) + "\\}", ref, False))
        out.append(("\\{" + ",".join(map(str, shuffled[:-1])) + "\\}", ref, False))
    out += [
        (r"\{\frac12, 3\}", r"\{3, 0.5\}", True),
        (r"\{1,2\}", r"\{1,2,2\}", None),
        ("1, -2", "-2, 1", True),
        (r"-2 \text{ and } 1", "1, -2", None),
        (r"\emptyset", r"\{\}", None),
    ]
    return out


@generator("tuples")
def _tuples(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(14):
        n = rng.randint(2, 3)
        items = [rng.randint(-9, 9) for _ in range(n)]
        ref = "(" + ",".join(map(str, items)) + ")"
        out.append(("\\left(" + ", ".join(map(str, items)) + "\\right)", ref, True))
        out.append(("(" + ", ".join(f"{x}.0" for x in items) + ")", ref, True))
        swapped = items[::-1]
        out.append(("(" + ",".join(map(str, swapped)) + ")", ref, swapped == items))
        out.append(("(" + ",".join(map(str, items[:-1])) + ")", ref, False))
        bumped = items[:]
        bumped[-1] += 1
        out.append(("(" + ",".join(map(str, bumped)) + ")", ref, False))
    out += [
        (r"(\frac{1}{2}, -\frac{3}{4})", "(0.5,-0.75)", True),
        (r"(1, \sqrt{2})", r"(1,\sqrt{2})", True),
        ("(1,2)", r"\{1,2\}", False),
        ("x=1, y=2", "(1,2)", None),
        ("(3, 4)", "3, 4", None),
    ]
    return out


@generator("units_text")
def _units_text(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    # (word, power): "cm", 2 is written "\\text{ cm}^2"
    units = [("cm", ""), ("inches", ""), ("meters", ""), ("feet", ""), ("dollars", ""), ("square units", ""),
             ("degrees", ""), ("cm", "^2"), ("km/h", ""), ("minutes", "")]  # fmt: skip
    for _ in range(16):
        n = rng.randint(1, 500)
        word, power = rng.choice(units)
        text_unit = f"\\text{{ {word}}}{power}"
        out.append((f"{n} {text_unit}", str(n), True))
        out.append((f"{n}\\mbox{{ {word}}}", str(n), True))
        out.append((f"{n} {text_unit}", str(n + 1), False))
        out.append((f"{n} {word}", str(n), True))  # bare unit word
    out += [
        (r"\text{Evelyn}", "Evelyn", True),
        (r"\text{Evelyn}", r"\text{Emily}", False),
        (r"\text{(C)}", r"\text{(C)}", True),
        (r"\text{(C)}", r"\text{(D)}", False),
        (r"\text{yes}", r"\text{no}", False),
        (r"\text{odd}", r"\text{even}", False),
        (r"\text{odd}", r"\textbf{odd}", True),
        (r"\$5.00", "5", True),
        (r"\$1.50", "1.5", True),
        (r"\$1.50", "1.05", False),
        ("5t", "5", False),  # a variable, not a unit
        ("3h", "3", False),
        ("2x + c", "2x", False),
        ("4m", "4", False),
        (r"\pi r^2 h", r"\pi r^2", False),
        ("10s", "10", False),
    ]
    return out


@generator("degrees")
def _degrees(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(10):
        n = rng.randint(1, 359)
        out.append((f"{n}^\\circ", str(n), True))
        out.append((f"{n}^{{\\circ}}", f"{n}^\\circ", True))
        out.append((f"{n}°", str(n), True))
        out.append((f"{n} \\text{{ degrees}}", str(n), True))
        out.append((f"{n + 1}^\\circ", str(n), False))
    out += [
        (r"\frac{\pi}{6}", r"30^\circ", None),  # radians for a degree answer
        (r"\sin 30^\circ", r"\frac12", True),
        (r"\cos 60^\circ", r"\frac{1}{2}", True),
    ]
    return out


@generator("percent")
def _percent(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(10):
        n = rng.randint(1, 99)
        out.append((f"{n}\\%", str(n), True))
        out.append((f"{n}%", f"{n}\\%", True))
        out.append((f"{n} \\text{{ percent}}", str(n), True))
        out.append((f"{n / 100}", f"{n}\\%", None))
        out.append((f"{n + 1}\\%", str(n), False))
    return out


@generator("negatives")
def _negatives(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(12):
        n = rng.randint(1, 1000)
        out.append((f"-{n}", f"-{n}", True))
        out.append((f"({-n})", f"-{n}", True))
        out.append((f"\u2212{n}", f"-{n}", True))
        out.append((f"-{n}.0", f"-{n}", True))
        out.append((f"- {n}", f"-{n}", True))
        out.append((str(n), f"-{n}", False))
        out.append((f"+{n}", str(n), True))
    for _ in range(6):
        v = _terminating_fraction(rng)
        out.append((_frac(-v.numerator, v.denominator), f"\\frac{{-{v.numerator}}}{{{v.denominator}}}", True))
        out.append((f"-{float(v)}", _frac(-v.numerator, v.denominator), True))
        out.append((f"{float(v)}", _frac(-v.numerator, v.denominator), False))
    return out


@generator("scientific")
def _scientific(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(12):
        mantissa = rng.randint(11, 99) / 10
        exp = rng.randint(-6, 9)
        value = Fraction(str(mantissa)) * Fraction(10) ** exp
        if exp < 0:
            plain = f"{float(value):.12f}".rstrip("0").rstrip(".")
        else:
            plain = str(int(value)) if value.denominator == 1 else str(float(value))
        out.append((f"{mantissa} \\times 10^{{{exp}}}", plain, True))
        out.append((f"{mantissa}\\cdot10^{{{exp}}}", f"{mantissa} \\times 10^{{{exp}}}", True))
        out.append((f"{mantissa} \\times 10^{{{exp + 1}}}", plain, False))
    out += [("1.5e3", "1500", None), ("2 \\times 10^3", "2000", True), ("10^6", "1,000,000", True)]
    return out


@generator("matrices")
def _matrices(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(8):
        rows, cols = rng.choice([(2, 1), (3, 1), (2, 2)])
        cells = [[rng.randint(-9, 9) for _ in range(cols)] for _ in range(rows)]

        def mat(env: str, cs: list[list[object]], sep: str = " \\\\ ") -> str:
            return f"\\begin{{{env}}} " + sep.join(" & ".join(map(str, r)) for r in cs) + f" \\end{{{env}}}"

        ref = mat("pmatrix", cells)
        out.append((mat("pmatrix", cells, "\\\\"), ref, True))
        out.append((mat("bmatrix", cells), ref, True))
        halves = [[_frac(2 * c, 2) if c else "0" for c in r] for r in cells]
        out.append((mat("pmatrix", halves), ref, True))
        bumped = [r[:] for r in cells]
        bumped[-1][-1] += 1
        out.append((mat("pmatrix", bumped), ref, False))
        if cols == 1:
            out.append(("(" + ",".join(str(r[0]) for r in cells) + ")", ref, None))  # vector as tuple
    return out


@generator("equations")
def _equations(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(12):
        n = rng.randint(-20, 20)
        var = rng.choice(["x", "y", "k", "a", "n", "t"])
        out.append((f"{var}={n}", str(n), True))
        out.append((str(n), f"{var} = {n}", True))
        out.append((f"{var} = {n}", f"{var}={n}", True))
        out.append((f"{var}={n + 1}", str(n), False))
    out += [
        ("y = 2x+1", "2x+1", True),
        ("y=2x+1", "y = 1 + 2x", True),
        ("y=2x+1", "y=2x-1", False),
        ("x=3", "y=3", None),
        ("x=1, y=2", "x=1,y=2", True),
        ("x=1, y=2", "x=2, y=1", False),
        (r"\theta = \frac{\pi}{4}", r"\frac{\pi}{4}", True),
        ("x^2+y^2=1", "y^2+x^2=1", True),
        ("2x+3y=6", "y=-\\frac{2}{3}x+2", None),
    ]
    return out


@generator("thousands")
def _thousands(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(14):
        n = rng.randint(1000, 99_999_999)
        grouped = f"{n:,}"
        out.append((grouped, str(n), True))
        out.append((str(n), grouped, True))
        out.append((grouped.replace(",", "{,}"), str(n), True))
        out.append((grouped.replace(",", "\\,"), str(n), True))
        out.append((f"{n + 1:,}", str(n), False))
    out += [("1,000", "1", False), ("12,345.5", "12345.5", True), ("1,2", "12", False), ("1,000", "1000.0", True)]
    return out


@generator("pi")
def _pi(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(10):
        p, q = rng.randint(1, 12), rng.randint(1, 6)
        v = Fraction(p, q)
        if v.denominator == 1:
            ref = f"{v.numerator}\\pi"
            out.append((f"\\pi \\cdot {v.numerator}", ref, True))
            out.append((f"{v.numerator} \\pi", ref, True))
        else:
            ref = f"\\frac{{{v.numerator}\\pi}}{{{v.denominator}}}"
            out.append((f"\\frac{{{v.numerator}}}{{{v.denominator}}}\\pi", ref, True))
            out.append((f"{v.numerator}\\pi/{v.denominator}", ref, True))
        value = float(v) * 3.141592653589793
        out.append((f"{value:.10f}", ref, True))
        out.append((f"{value:.2f}", ref, False))
        out.append((f"{v.numerator + 1}\\pi", ref, False))
    out += [("3.14", r"\pi", False), (r"\pi", "\\pi", True), (r"2\pi r", r"2 \pi r", True), (r"\pi r^2", r"r^2\pi", True)]
    return out


@generator("algebra")
def _algebra(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(10):
        a, b = rng.randint(1, 9), rng.randint(-9, 9)
        sb = f"+{b}" if b >= 0 else str(b)
        ref = f"x^2{'+' if 2 * b >= 0 else '-'}{abs(2 * b)}x+{b * b}"
        out.append((f"(x{sb})^2", ref, True))
        out.append((f"(x{sb})^2", f"x^2+{b * b}", b == 0))
        out.append((f"{a}x{sb}", f"{sb}+{a}x" if b < 0 else f"{b}+{a}x", True))
        out.append((f"{a}x{sb}", f"{a}x{'+' if b + 1 >= 0 else ''}{b + 1}", False))
    out += [
        ("x^2-1", "(x-1)(x+1)", True),
        (r"\frac{x^2-1}{x-1}", "x+1", True),
        ("2(x+1)", "2x+2", True),
        (r"\frac{1}{x}+\frac{1}{y}", r"\frac{x+y}{xy}", True),
        (r"\log_2 8", "3", True),
        (r"\ln e^2", "2", True),
        ("3+4i", "4i+3", True),
        ("3-4i", "3+4i", False),
        (r"\binom{6}{3}", "20", True),
        ("4!", "24", True),
        ("|-3|", "3", True),
        (r"2^{10}", "1024", True),
        (r"2^{10}", "1000", False),
    ]
    return out


@generator("mixed_numbers")
def _mixed_numbers(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for _ in range(6):
        whole, q = rng.randint(1, 9), rng.randint(2, 9)
        p = rng.randint(1, q - 1)
        v = whole + Fraction(p, q)
        mixed = f"{whole}\\frac{{{p}}}{{{q}}}"
        out.append((mixed, _frac(v.numerator, v.denominator), True))
        out.append((f"{whole} \\frac{{{p}}}{{{q}}}", _frac(v.numerator, v.denominator), True))
        out.append((mixed, _frac(whole * p, q), False))  # the product reading
    return out


@generator("plus_minus")
def _plus_minus(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    return [
        (r"\pm 3", r"3, -3", True),
        (r"\pm 3", r"\pm3", True),
        (r"\pm\sqrt{5}", r"\sqrt{5}", False),
        (r"2 \pm \sqrt{3}", r"2+\sqrt{3}, 2-\sqrt{3}", True),
    ]


@generator("assorted")
def _assorted(rng: random.Random) -> list[tuple[str, str, bool | None]]:
    """Hand-picked cases across the families above: bases, tiny decimals, complex numbers,
    inverse trig, inequalities, floors, currency, answers with words."""
    return [
        ("1011_2", "1011_{2}", True),
        ("1011_2", "1012_2", False),
        ("1011_2", "1011", None),  # the digits without the base
        ("11_2", "3", None),  # the value in base ten
        ("0.0000001", "0", False),
        ("0.00000053", "0.00000054", False),
        (r"1.2\times10^{-8}", r"1.3\times10^{-8}", False),
        ("3.14159", r"\pi", None),
        (r"0.\overline{3}", r"\frac{1}{3}", True),
        (r"e^{2}", r"\exp(2)", True),
        (r"\log 100", "2", None),  # log base 10 or natural log
        (r"\text{Monday}", "Monday", True),
        ("x^2", "X^2", None),
        (r"\frac{a}{b}", "a/b", True),
        ("a/b", "b/a", False),
        (r"\dfrac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
        ("1/0", r"\infty", False),
        ("x > 2", "2 < x", True),
        (r"x \geq 2", "x > 2", False),
        ("x<2", r"(-\infty,2)", None),
        (r"2 \text{ or } 3", "2, 3", None),
        (r"\sqrt{-4}", "2i", True),
        ("i", r"\sqrt{-1}", True),
        ("-i", "i", False),
        ("1+i", "1-i", False),
        (r"\cos \frac{\pi}{3}", r"\frac{1}{2}", True),
        (r"\arctan 1", r"\frac{\pi}{4}", True),
        (r"\tan^{-1}(1)", r"\frac{\pi}{4}", True),
        (r"5\%", "0.05", None),
        (r"\$1,000", "1000", True),
        (r"\$1,000.50", "1000.5", True),
        (r"\$0.50", "0.5", True),
        ("x", "y", False),
        ("2x", "2y", False),
        ("f(x) = 2x", "2x", None),
        (r"\mathrm{A}", "A", True),
        ("90", "90.0001", False),
        ("1000000", "10^6", True),
        ("2^{100}", "1267650600228229401496703205376", True),
        ("2^{100}", "1267650600228229401496703205377", False),
        (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}", True),
        (r"\frac{1}{2}x", r"\frac{x}{2}", True),
        (r"2 \cdot 3", "6", True),
        (r"2 \times 3", "5", False),
        (r"\lfloor 2.5 \rfloor", "2", True),
        (r"\lceil 2.5 \rceil", "3", True),
        ("|x|", "x", False),
        (r"\frac{1}{2} \text{ hours}", r"30 \text{ minutes}", None),  # a unit conversion
        (r"8 \text{ ft}^2", "8", True),
        (r"\frac{5}{2} \text{ inches}", "2.5", True),
        (r"6\pi \text{ cm}", r"6\pi", True),
        (r"6 \pi cm", r"6\pi", True),
        (r"5 \text{ people}", "5", True),
        (r"x = 3 \text{ or } x = -3", r"\pm 3", None),
        ("a = 1, b = 2", "(1,2)", None),
        (r"\left\{1,2\right\}", r"\{1,2\}", True),
        (r"\{1, 2\}", "1, 2", True),
        ("[1,2]", r"\{1,2\}", False),
        (r"\frac{x+1}{x-1}", r"\frac{x-1}{x+1}", False),
        (r"\sqrt{x^2}", "x", None),  # |x| unless x >= 0
        (r"\frac{\sqrt{6}-\sqrt{2}}{4}", r"\sin 15^\circ", True),
        ("0.1+0.2", "0.3", True),
        ("1e-3", "0.001", None),
    ]


def generated_pairs() -> list[Pair]:
    rng = random.Random(SEED)
    pairs: list[Pair] = []
    for name, fn in GENERATORS.items():
        for prediction, reference, expected in fn(rng):
            pairs.append(Pair(f"generated:{name}", prediction, reference, expected))
    return pairs


def corpus(unit_tests: Path = UNIT_TESTS) -> list[Pair]:
    pairs = fixture_pairs() + unit_test_pairs(unit_tests) + generated_pairs()
    return list(dict.fromkeys(pairs))  # drop exact duplicates, keep the first order


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def _timed(fn: Callable[[str, str], bool], pair: Pair) -> tuple[bool, float]:
    started = time.perf_counter()
    verdict = fn(pair.prediction, pair.reference)
    return verdict, time.perf_counter() - started


def _mark(verdict: bool, expected: bool | None) -> str:
    if expected is None:
        return "?"
    return "ok" if verdict == expected else "WRONG"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, help="path of an earlier math_answers.py to compare against")
    parser.add_argument("--all", action="store_true", help="print every pair's verdicts")
    parser.add_argument("--json", type=Path, help="also write every pair and verdict to this file")
    parser.add_argument("--unit-tests", type=Path, default=UNIT_TESTS,
                        help="the test module whose pairs to take (default: %(default)s)")
    args = parser.parse_args(argv)

    old_module = _load("_math_answers_old", args.old) if args.old else None
    pairs = corpus(args.unit_tests)
    rows = []
    for pair in pairs:
        new, new_s = _timed(new_module.is_equiv, pair)
        old, old_s = _timed(old_module.is_equiv, pair) if old_module else (None, 0.0)
        rows.append({**asdict(pair), "new": new, "old": old, "new_s": round(new_s, 4), "old_s": round(old_s, 4)})

    def show(row: dict, tag: str) -> None:
        expected = {True: "equivalent", False: "not equivalent", None: "unclear"}[row["expected"]]
        old = "" if row["old"] is None else f"old={row['old']!s:5} [{_mark(row['old'], row['expected'])}]  "
        print(
            f"{tag:8} {row['source']:26} {old}new={row['new']!s:5} [{_mark(row['new'], row['expected'])}]  "
            f"expected: {expected:14}  pred={row['prediction']!r}  ref={row['reference']!r}"
        )

    if old_module:
        disagreements = [r for r in rows if r["old"] != r["new"]]
        print(f"== {len(disagreements)} disagreements between OLD ({args.old}) and NEW")
        for row in disagreements:
            show(row, "DIFF")
    wrong_new = [r for r in rows if r["expected"] is not None and r["new"] != r["expected"]]
    print(f"== {len(wrong_new)} pairs where NEW contradicts the expected verdict")
    for row in wrong_new:
        show(row, "NEW-X")
    if args.all:
        print("== all pairs")
        for row in rows:
            show(row, "PAIR")

    print("== summary")
    by_source = Counter(r["source"].split(":")[0] for r in rows)
    print(f"pairs: {len(rows)} ({', '.join(f'{k} {v}' for k, v in by_source.items())}); "
          f"expected verdict known for {sum(r['expected'] is not None for r in rows)}")
    for side in ("old", "new") if old_module else ("new",):
        labelled = [r for r in rows if r["expected"] is not None]
        right = sum(r[side] == r["expected"] for r in labelled)
        false_pos = sum(r[side] and r["expected"] is False for r in labelled)
        false_neg = sum((not r[side]) and r["expected"] is True for r in labelled)
        total_s = sum(r[f"{side}_s"] for r in rows)
        slowest = max(rows, key=lambda r: r[f"{side}_s"])
        print(f"{side.upper()}: {right}/{len(labelled)} as expected, {false_pos} false equivalences, "
              f"{false_neg} missed equivalences; {total_s:.1f} s in all, slowest "
              f"{slowest[f'{side}_s']:.2f} s ({slowest['prediction'][:30]!r} vs {slowest['reference'][:30]!r})")
    if old_module:
        print(f"disagreements: {sum(r['old'] != r['new'] for r in rows)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
