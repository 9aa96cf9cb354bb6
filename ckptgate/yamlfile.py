"""YAML data files (suites, baselines, margins) loaded with line numbers and checked against
pydantic models, so that every error names the file and line it is about."""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from ckptgate.errors import CkptgateError

# A suite benchmark's id, which baseline entries and metric references name.
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class LineDict(dict[str, Any]):
    """A mapping from a YAML file that remembers where it and each of its keys stand."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: object) -> int:
        return self.key_lines.get(str(key), self.line)


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:  # type: ignore[override]
        mapping = LineDict(super().construct_mapping(node, deep=deep))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {
            str(key_node.value): key_node.start_mark.line + 1 for key_node, _ in node.value
        }
        return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)


def load_yaml(path: Path, error: type[CkptgateError]) -> Any:
    """Parse ``path``; malformed YAML raises ``error`` naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise error(f"{where}: malformed YAML: {exc.problem}") from None


def names_in(folder: Path) -> list[str]:
    """The data files of ``folder`` by name (``<name>.yaml``)."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def resolve_data_file(name_or_path: str, folder: Path, kind: str, error: type[CkptgateError]) -> Path:
    """A data file given by name (``folder/<name>.yaml``) or by path; ``kind`` names it in errors."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        if not candidate.is_file():
            raise error(f"{kind} file {candidate} does not exist")
        return candidate.resolve()
    path = folder / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(names_in(folder)) or "none"
        raise error(
            f"unknown {kind} {name_or_path!r}; known {kind}s: {known} (or pass the path of a {kind} YAML file)"
        )
    return path


# --- schemas ----------------------------------------------------------------------------------


class Model(BaseModel):
    """A mapping of a data file: unknown keys are errors and values are taken as YAML typed them
    (strict: ``"3"`` is not a number, ``true`` is not 1).

    ``what`` names the mapping in errors about its keys, formatted with its values (``?`` for a
    missing one); None: the key it stands under. ``not_a_mapping``: the error for a list item
    that should be one of these and is not.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    what: ClassVar[str | None] = None
    not_a_mapping: ClassVar[str] = "each item must be a mapping, got {value!r}"


@dataclass(frozen=True)
class Message:
    """A field's error, formatted with ``name`` (the key) and ``value`` (what the file has there):
    used when the value has the wrong type or breaks a :func:`rule` that has no message of its own."""

    text: str


class Invalid(ValueError):
    """A broken rule whose message is shown as is, at the line of ``at``: keys and indexes below
    the value being validated (nothing: the value itself)."""

    def __init__(self, message: str, *at: str | int) -> None:
        super().__init__(message)
        self.at = at


class _Broken(ValueError):
    """A rule without a message of its own, broken by ``value`` (as the rule saw it)."""

    def __init__(self, value: Any) -> None:
        super().__init__("breaks a rule")
        self.value = value


def rule(test: Callable[[Any], object], message: str | None = None) -> AfterValidator:
    """A domain rule: the value must pass ``test``; else ``message`` (formatted with ``value``),
    or the field's :class:`Message`."""

    def check(value: Any) -> Any:
        if not test(value):
            if message is None:
                raise _Broken(value)
            raise Invalid(message.format(value=value))
        return value

    return AfterValidator(check)


Text = Annotated[str, BeforeValidator(str)]  # any scalar, read as its text
Flag = Annotated[bool, Message("{name} must be true or false")]
Number = Annotated[float, Message("{name} must be a number, got {value!r}")]  # an int or a float

M = TypeVar("M", bound=Model)


def load_model(
    path: Path, model: type[M], error: type[CkptgateError], context: dict[str, Any] | None = None
) -> tuple[M, LineDict]:
    """Parse ``path`` and validate it as ``model`` (``context`` goes to its validators); any error
    raises ``error`` as ``<path>:<line>: <message>``. Returns the model and the loaded mapping."""
    data = load_yaml(path, error)
    if not isinstance(data, LineDict):
        required = sorted(name for name, info in model.model_fields.items() if info.is_required())
        what = model.what or "the"
        what = what if what.endswith(" file") else f"{what} file"
        raise error(f"{path}: {what} must be a mapping with {' and '.join(map(repr, required))}")
    try:
        return model.model_validate(data, context=context), data
    except ValidationError as exc:
        raise error(_explain(model, data, path, exc.errors(include_url=False))) from None


def load_mapping(
    path: Path, *, what: str, required: set[str], optional: set[str], error: type[CkptgateError]
) -> LineDict:
    """Parse a data file whose top level is a mapping with these keys (values unchecked)."""
    fields: dict[str, Any] = {key: (Any, ...) for key in required} | {key: (Any, None) for key in optional}
    model = create_model("Mapping", __base__=Model, **fields)
    model.what = what
    return load_model(path, model, error)[1]


def _explain(model: type[Model], data: LineDict, path: Path, errors: list[Any]) -> str:
    """The first of pydantic's errors in file order (a mapping's keys before its values), as
    ``<path>:<line>: <message>``."""
    rank = {"extra_forbidden": 0, "invalid_key": 0, "missing": 1}
    located = []
    for err in errors:
        invalid = (err.get("ctx") or {}).get("error")
        loc = (*err["loc"], *(invalid.at if isinstance(invalid, Invalid) else ()))
        mapping, key = _mapping_at(data, loc)
        line = mapping.line if key is None else mapping.line_of(key)
        located.append(((mapping.line, rank.get(err["type"], 2), line), loc, err))
    (_, _, line), loc, err = min(located, key=lambda item: item[0])
    missing = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == loc[:-1])
    return f"{path}:{line}: {_message(model, data, loc, err, missing)}"


def _mapping_at(data: LineDict, loc: tuple[Any, ...]) -> tuple[LineDict, Any]:
    """The innermost mapping on the path ``loc`` and its key the path goes on through (None: the
    mapping itself, as for an item of a list)."""
    node: Any = data
    mapping, key = data, None
    for step in loc:
        if isinstance(node, LineDict):
            mapping, key, node = node, step, node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
            if isinstance(node, LineDict):
                mapping, key = node, None
        else:
            break
    return mapping, key


def _message(model: type[Model], data: LineDict, loc: tuple[Any, ...], err: Any, missing: list[str]) -> str:
    invalid = (err.get("ctx") or {}).get("error")
    if isinstance(invalid, Invalid):
        return str(invalid)
    # Walk the models along with the data, down to the mapping the error is in.
    node: Any = data
    name: str | None = None  # the key that mapping stands under
    key: Any = None
    info = inner = None
    step = 0
    while step < len(loc):
        key, step = loc[step], step + 1
        info = model.model_fields.get(key) if isinstance(key, str) else None
        value = node.get(key)
        rest = loc[step:]
        while step < len(loc) and isinstance(loc[step], int) and isinstance(value, list) and loc[step] < len(value):
            value, step = value[loc[step]], step + 1
        inner = _first(info, lambda p: isinstance(p, type) and issubclass(p, Model)) if info else None
        if inner is None or not isinstance(value, LineDict) or step == len(loc):  # about the field itself
            break
        model, node, name, key = inner, value, key, None
    what = name if model.what is None else model.what.format_map(_Unknown(node))
    if err["type"] in ("extra_forbidden", "invalid_key"):
        close = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {key!r} in {what}{hint} (allowed keys: {', '.join(sorted(model.model_fields))})"
    if err["type"] == "missing":
        return f"{what} is missing {', '.join(missing)}"
    if key is None:
        return f"{what}: {err['msg']}"
    if inner is not None and rest and isinstance(rest[0], int):  # a list item that is no mapping
        return inner.not_a_mapping.format(value=err["input"])
    value = invalid.value if isinstance(invalid, _Broken) else err["input"]
    message = _first(info, lambda p: isinstance(p, Message))
    if message is None:
        return f"{key}: {err['msg']}, got {value!r}"
    return message.text.format(name=key, value=value)


class _Unknown(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _first(annotation: Any, test: Callable[[Any], bool]) -> Any:
    """The first part of a field (its metadata, ``Annotated`` metadata, union members, container
    arguments, depth first) that passes ``test``."""
    if test(annotation):
        return annotation
    parts = (*annotation.metadata, annotation.annotation) if isinstance(annotation, FieldInfo) else typing.get_args(annotation)
    return next((found for part in parts if (found := _first(part, test)) is not None), None)
