"""Answer extraction and equivalence for the Qwen-style MATH scorer (``math_qwen``).

The model is prompted with "Question: {X}\\nAnswer:" and chain-of-thought few-shot answers that
end in ``\\boxed{}``; its final answer is taken from the last ``\\boxed{}`` (or, failing that, a
"The answer is X" sentence) and judged against the reference by mathematical equivalence rather
than string matching, so ``\\frac{1}{2}``, ``0.5`` and ``\\dfrac12`` all count as the same answer.

Extraction follows Qwen's rules and is done here. Equivalence is math-verify's (the pinned
``math-verify`` package, which lm-eval's ``minerva_math`` in the same suite also scores with):
both answers are normalised here (``normalize``: spacing, ``$``, units, degree and percent signs,
thousands separators, a leading "x ="), and, unless the normalised strings are equal, parsed by
math-verify's LaTeX parser (latex2sympy2_extended, an ANTLR grammar that turns LaTeX into sympy)
and compared by ``math_verify.verify`` (numbers to 6 decimal places when a decimal is involved,
exact forms by sympy simplification; sets, intervals, tuples, matrices and equations by their
structure). One LaTeX parser and one notion of equivalence for both MATH variants, maintained
upstream and used widely, rather than a parser of our own.

Everything here is a pure function of its strings: no model I/O, no environment, no prints.
math-verify (and with it sympy) is imported on the first comparison, as it is slow to import.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["extract_answer", "extract_boxed", "is_equiv", "normalize", "score"]

# Longer answers are compared as normalised strings only: parsing and sympy's cost grow quickly
# with size.
MAX_PARSE_CHARS = 200
# Wall-clock bound on the parse-and-verify part of one comparison (enforced where a timer is
# available, see ``_time_limit``).
TIME_LIMIT_S = 3.0

# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _match_brace(text: str, open_at: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_at``; None when unbalanced.

    Escaped braces (``\\{``, ``\\}``) do not count, so ``\\boxed{\\{1,2\\}}`` keeps its set.
    """
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``) in ``text``.

    The last one wins because chain-of-thought answers may box intermediate results before the
    final one. Nested braces are matched (``\\boxed{\\frac{1}{2}}`` -> ``\\frac{1}{2}``); an
    unbalanced last box yields None rather than a truncated, misleading answer.
    """
    matches = list(_BOXED_RE.finditer(text))
    if not matches:
        return None
    rest_at = matches[-1].end()
    stripped = text[rest_at:].lstrip()
    if stripped.startswith("{"):
        open_at = len(text) - len(stripped)
        close_at = _match_brace(text, open_at)
        if close_at is None:
            return None
        return text[open_at + 1 : close_at].strip()
    if len(stripped) == len(text) - rest_at or not stripped:
        # "\boxed" immediately followed by something other than a brace or a space: not a box.
        return None
    # "\boxed 5": the brace-less form takes one token, up to whitespace or a closing "$".
    token = re.match(r"[^\s$]+", stripped)
    return token.group(0) if token else None


_ANSWER_IS_RE = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b\s*:?", re.IGNORECASE)
_DELIMITED = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _strip_math_delimiters(text: str) -> str:
    """Remove one pair of surrounding ``$...$`` / ``$$...$$`` / ``\\(...\\)`` / ``\\[...\\]``."""
    text = text.strip()
    for left, right in _DELIMITED:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            return text[len(left) : len(text) - len(right)].strip()
    return text


def _answer_after_phrase(rest: str) -> str | None:
    """The answer that follows "the answer is": a math span if it starts with one, else the
    sentence up to its end (a period followed by a space or the end of the line)."""
    rest = rest.lstrip()
    for left, right in _DELIMITED:
        if rest.startswith(left):
            # An escaped dollar ("\\$1.50") does not close a $...$ span.
            close = re.compile(r"(?<!\\)" + re.escape(right)).search(rest, len(left))
            if close is not None:
                return rest[len(left) : close.start()].strip() or None
    line = rest.split("\n", 1)[0]
    line = re.split(r"\.(?:\s|$)", line, maxsplit=1)[0]
    line = line.strip().strip("*").strip().rstrip(".").strip()
    line = _strip_math_delimiters(line)
    return line or None


def extract_answer(text: str) -> str | None:
    """The model's final answer: the last ``\\boxed{}``, else the last "The answer is X" /
    "the final answer is X" (trailing period, whitespace and ``$...$`` removed), else None.

    Boxes take precedence because the few-shot answers teach the model to box its answer; the
    phrase is the fallback for generations that state the answer in prose instead.
    """
    boxed = extract_boxed(text)
    if boxed:
        return boxed
    matches = list(_ANSWER_IS_RE.finditer(text))
    if not matches:
        return None
    return _answer_after_phrase(text[matches[-1].end() :])


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

# Units are written with \text and friends; \mathrm is left alone there (it also spells "\mathrm{i}").
_UNIT_CMDS = r"(?:text|textrm|textnormal|mbox)"
_TEXT_CMDS = r"(?:text|textrm|textnormal|textbf|mbox|mathrm)"
_TRAILING_UNIT_RE = re.compile(r"(?<=\S)\s*\\" + _UNIT_CMDS + r"\s*\{[^{}]*\}(?:\s*\^\s*\{?\d\}?)?\s*$")
_TEXT_WRAP_RE = re.compile(r"\\" + _TEXT_CMDS + r"\s*\{([^{}]*)\}")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])")
# A "\\" line break is matched (and kept) first, so "1 \\ 2" does not lose "\ ".
_SPACING_RE = re.compile(r"(\\\\)|\\(?:[!,;: ]|q?quad(?![A-Za-z]))|~")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ(?![A-Za-z])|\\degree(?![A-Za-z])|°")
_ASSIGNMENT_RE = re.compile(r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[A-Za-z0-9]+\}?)?\s*=(.*)$", re.DOTALL)
# A unit written as a bare word after the value ("12 inches", "5 square units", "60 km/h"), as
# answers stated in prose have them. Single letters are not units here: "5t" and "\pi r^2 h" are
# expressions in a variable.
_UNIT_WORDS = (
    r"units?|inch(?:es)?|feet|foot|ft|yards?|miles?|(?:centi|milli|kilo)?met(?:er|re)s?|cm|mm|km|"
    r"degrees?|dollars?|cents?|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|"
    r"years?|(?:kilo)?grams?|kg|pounds?|lbs?|ounces?|oz|lit(?:er|re)s?|gallons?|mph|km/h|kmh"
)
_UNIT_WORD_RE = re.compile(
    r"(?<=[\w})])\s+(?:(?:square|sq\.?|cubic)\s+)?(?:" + _UNIT_WORDS + r")(?:\s*\^\s*\{?[23]\}?)?\s*$",
    re.IGNORECASE,
)
_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_CMD_THEN_LETTER_RE = re.compile(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])")


def _strip_trailing_period(text: str) -> str:
    return text.strip().rstrip(".").strip()


def normalize(answer: str) -> str:
    """Canonical string form of an answer, so that cosmetic LaTeX differences compare equal.

    Removes whitespace, ``$``, ``\\left``/``\\right``, spacing commands, trailing
    ``\\text{...}`` units and unit words ("12 inches"), degree signs, percent signs, a trailing
    period, thousands separators in plain numbers ("1,234" but not "(1,2)") and a leading
    single-variable assignment ("x = 5");
    ``\\dfrac``/``\\tfrac`` become ``\\frac``. Whitespace is dropped except where it separates a
    command from a following letter (``\\pi r`` must not become ``\\pir``).
    """
    s = answer.replace("\u2212", "-").replace("\\$", "").replace("$", "")
    s = _strip_math_delimiters(_strip_trailing_period(s))
    s = s.replace("\\displaystyle", "")
    s = _LEFT_RIGHT_RE.sub("", s)
    s = _SPACING_RE.sub(lambda m: m.group(1) or "", s)
    s = s.replace("{,}", ",")
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = _strip_trailing_period(s)
    while True:
        shorter = _TRAILING_UNIT_RE.sub("", s)
        if shorter == s:
            break
        s = shorter
    s = _UNIT_WORD_RE.sub("", s)
    s = _TEXT_WRAP_RE.sub(r"\1", s)
    if s.count("=") == 1:
        assignment = _ASSIGNMENT_RE.match(s)
        if assignment and assignment.group(1).strip():
            s = assignment.group(1)
    s = _CMD_THEN_LETTER_RE.sub("\\1\x00", s)
    s = re.sub(r"\s+", "", s).replace("\x00", " ")
    s = _strip_trailing_period(s)
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    return s


# ---------------------------------------------------------------------------------------------
# Equivalence (math-verify)
# ---------------------------------------------------------------------------------------------

# Parsed answers whose exact value would run to more digits than this are not compared
# (``9^{9^{9}}`` would otherwise hang the scorer in sympy), nor are integer powers of symbolic
# bases above _MAX_SYMBOLIC_EXPONENT (expansion blows up) or factorials/binomials of numbers
# above _MAX_FACTORIAL.
_MAX_DIGITS = 5000
_MAX_SYMBOLIC_EXPONENT = 100
_MAX_FACTORIAL = 1000


class _OutOfTime(BaseException):
    """A comparison ran past its time limit.

    A BaseException, so that neither math-verify's nor sympy's ``except Exception`` handlers
    swallow it and carry on with a comparison whose time is up.
    """


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ``_OutOfTime`` in the block after ``seconds`` of wall-clock time.

    Uses SIGALRM, so it only applies on the main thread of a POSIX process and only when no
    other interval timer is running (e.g. pytest-timeout's); elsewhere the size limits on the
    answers and on the parsed expressions (``_too_large``) are the only guard.
    """
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
    if not usable:
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@functools.cache
def _math_verify() -> Any:
    """The math-verify module, set up for bare answers; imported on first use.

    math-verify's own timeouts are turned off at each call (``parsing_timeout=None``,
    ``timeout_seconds=None``): they use ``signal.alarm``, which raises ValueError off the main
    thread and would replace a running interval timer; ``_time_limit`` bounds the whole
    comparison instead, so the warning math-verify logs once when its timeouts are off is
    silenced.
    """
    import math_verify
    import math_verify.grader
    import math_verify.parser

    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return math_verify


@functools.cache
def _extraction_config() -> tuple[Any, ...]:
    """Read an answer wrapped in ``\\boxed{}`` as one LaTeX expression.

    Only the box is read (``try_extract_without_anchor=False``, and ``extraction_mode=
    "first_match"`` in ``_parse``): a box that does not parse is not replaced by some fragment
    of it. math-verify's unit stripping is off: ``normalize`` has removed units already, and
    math-verify's list of units includes single letters (m, s, t, h, d, ...), so that "5t"
    would read as 5 and ``\\pi r^2 h`` as ``\\pi r^2``. Its other normalisations stay on.
    """
    mv = _math_verify()
    normalization = mv.LatexNormalizationConfig(
        basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False
    )
    latex = mv.LatexExtractionConfig(
        try_extract_without_anchor=False, boxed_match_priority=0, normalization_config=normalization
    )
    return (latex,)


def _parse(answer: str) -> list[Any]:
    """math-verify's parse of one normalised answer: a list of sympy objects, empty on failure."""
    parsed = _math_verify().parse(
        "\\boxed{" + answer + "}",
        extraction_config=_extraction_config(),
        fallback_mode="no_fallback",
        extraction_mode="first_match",
        parsing_timeout=None,
    )
    return [_imaginary_unit(obj) for obj in parsed]


def _imaginary_unit(obj: Any) -> Any:
    """``obj`` with the symbol ``i`` replaced by sympy's imaginary unit.

    In MATH answers "i" is the imaginary unit ("3+4i"); latex2sympy2_extended reads it as a
    plain symbol (only a capital "I" becomes sympy's I), so that "i^2" would not equal -1 nor
    ``\\sqrt{-4}`` equal 2i. Replacing it in the parsed expression (not in the text: "I^2"
    parses as I, "{I}" as a set) fixes both.
    """
    import sympy

    try:
        units = {s: sympy.I for s in obj.free_symbols if s.name == "i"}
    except AttributeError:
        return obj
    return obj.xreplace(units) if units else obj


def _too_large(parsed: list[Any]) -> bool:
    """Whether verifying ``parsed`` could run away: a huge exact number, power or factorial."""
    import sympy

    for obj in parsed:
        elements = list(obj) if isinstance(obj, sympy.MatrixBase) else [obj]
        for element in elements:
            if not isinstance(element, sympy.Basic):
                continue
            for node in sympy.postorder_traversal(element):
                if _node_too_large(node, sympy):
                    return True
    return False


def _node_too_large(node: Any, sympy: Any) -> bool:
    if isinstance(node, sympy.Integer):
        return abs(int(node)).bit_length() > _MAX_DIGITS * 3.33
    if isinstance(node, (sympy.factorial, sympy.factorial2, sympy.subfactorial, sympy.binomial)):
        n = node.args[0]
        return bool(n.is_number) and not (n.is_Integer and abs(int(n)) <= _MAX_FACTORIAL)
    if isinstance(node, sympy.Pow):
        base, exponent = node.args
        if not exponent.is_number:
            return False
        try:
            magnitude = abs(complex(exponent.evalf(15)))
            if not base.is_number:
                return magnitude > _MAX_SYMBOLIC_EXPONENT
            size = abs(complex(base.evalf(15)))
        except (TypeError, ValueError, OverflowError, ArithmeticError):
            return True  # a numeric exponent with no finite value: too large to build
        return magnitude * math.log10(size + 2) > _MAX_DIGITS
    return False


# Points at which expressions in free symbols are evaluated before math-verify's simplify: values
# no textbook answer is singular at, different for each symbol.
_SAMPLE_STARTS = (0.5772156649, 1.2020569032)
_SAMPLE_STEP = 0.3183098862


def _differ_somewhere(a: Any, b: Any) -> bool:
    """Whether two plain expressions in free symbols take clearly different values somewhere.

    math-verify proves such pairs equal with ``sympy.simplify``, which can run for minutes
    (``(x+y+z)^{60}`` against ``(x+y+2)^{60}``) where no timer can stop it (off the main thread).
    Evaluation is cheap, and expressions that differ at a point cannot simplify to the same
    thing, so this only ever rejects; everything else still goes to math-verify. Not used for
    sets, tuples, equations, matrices or single symbols, which math-verify compares otherwise.
    """
    import sympy

    if not all(isinstance(x, sympy.Expr) and not isinstance(x, sympy.Symbol) for x in (a, b)):
        return False
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        return False
    for start in _SAMPLE_STARTS:
        subs = {symbol: start + k * _SAMPLE_STEP for k, symbol in enumerate(symbols)}
        try:
            va, vb = complex(a.evalf(30, subs=subs)), complex(b.evalf(30, subs=subs))
        except (TypeError, ValueError, ArithmeticError):
            continue  # not a number at this point (e.g. an undefined function)
        if not all(map(_finite, (va, vb))):
            continue
        if abs(va - vb) > 1e-9 * max(1.0, abs(va), abs(vb)):
            return True
    return False


def _finite(value: complex) -> bool:
    return all(part == part and abs(part) != float("inf") for part in (value.real, value.imag))


_OPENERS = {"(": ")", "[": "]"}


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside any bracket or brace."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _encloses(text: str, close_len: int) -> bool:
    """Whether the first bracket closes only at the very end ("(1,2)" yes, "(1)+(2)" no)."""
    depth = 0
    inner_end = len(text) - close_len
    for ch in text[:inner_end]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return False
    return True


def _container(text: str) -> str | None:
    """"set" for ``\\{...\\}``, "sequence" for a bracketed list ("(1,2)", "[1,2)"), else None."""
    if text.startswith("\\{") and text.endswith("\\}") and _encloses(text, 2):
        return "set"
    if len(text) >= 2 and text[0] in _OPENERS and text[-1] in ")]" and _encloses(text, 1):
        if len(_split_top_level(text[1:-1])) > 1:
            return "sequence"
    return None


def _balanced_braces(text: str) -> bool:
    """Whether every ``{`` closes (escaped ``\\{``/``\\}`` aside): the answer goes inside a
    ``\\boxed{}``, where a stray ``}`` would end the box early ("5}" would read as 5)."""
    depth = 0
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth < 0:
            return False
        i += 1
    return depth == 0


def _equivalent_normalized(a: str, b: str) -> bool:
    """math-verify's verdict on two normalised answers (``b`` the reference)."""
    if not (_balanced_braces(a) and _balanced_braces(b)):
        return False
    kinds = {_container(a), _container(b)}
    if kinds == {"set", "sequence"}:
        # math-verify compares an open interval "(1,2)" with a set "\{1,2\}" as a pair; a set
        # is neither an ordered pair nor an interval.
        return False
    gold = _parse(b)
    if not gold or _too_large(gold):
        return False
    pred = _parse(a)
    if not pred or _too_large(pred):
        return False
    if len(gold) == len(pred) == 1 and _differ_somewhere(gold[0], pred[0]):
        return False
    return bool(_math_verify().verify(gold, pred, timeout_seconds=None))


def is_equiv(prediction: str | None, target: str) -> bool:
    """Whether ``prediction`` is the same answer as ``target``.

    Equal normalised strings match; otherwise math-verify parses both normalised answers and
    compares them: ``\\sqrt{8}`` = ``2\\sqrt{2}``, ``0.5`` = ``\\frac{1}{2}`` (decimals are compared
    to 6 decimal places, so ``0.333`` is not ``\\frac{1}{3}``), intervals by their brackets and
    ends, sets and comma-separated lists of solutions in any order, tuples in order, ``x = 4`` =
    ``4``, ``3\\frac{1}{2}`` = ``\\frac{7}{2}``, ``i^2`` = ``-1``. A set is never a tuple or an
    interval. Never raises on any answer: anything unparsable, oversized or too slow is simply
    not equivalent (only a missing math-verify installation raises ImportError).
    """
    if prediction is None:
        return False
    try:
        a, b = normalize(prediction), normalize(target)
    except Exception:  # noqa: BLE001 - a scorer must score, whatever the model wrote
        return False
    if a == b:
        return True
    if not a or not b or len(a) > MAX_PARSE_CHARS or len(b) > MAX_PARSE_CHARS:
        return False
    _math_verify()  # outside the try: a missing math-verify is a broken install, not a wrong answer
    try:
        with _time_limit(TIME_LIMIT_S):
            return _equivalent_normalized(a, b)
    except _OutOfTime:
        return False
    except Exception:  # noqa: BLE001 - a scorer must score, whatever the model wrote
        return False


def score(generation: str, target: str) -> float:
    """1.0 when the generation's extracted final answer is equivalent to ``target``, else 0.0."""
    return 1.0 if is_equiv(extract_answer(generation), target) else 0.0
