"""A config that explains itself: one row per key of an experiment's schema, with its type, resolved value, the
schema's default, the bounds or choices it must keep to and its help text (:func:`describe`), and those rows as a
table grouped by section that fits a terminal (:func:`format_rows`). ``vlab show`` and ``vlab run CONFIG --help``
print it.

Nested sections (``train``, ``train.optimizer``, ...) become blocks of their own; a list of sub-configurations (a
GAN's ``variants``) is one row for the list and then a block per entry, its keys spelled ``variants[0].r1``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from omegaconf import MISSING

__all__ = ["NO_DEFAULT", "FieldRow", "describe", "format_rows", "format_value", "section_docs", "title"]


class _NoDefault:
    """The default of a key the config must give (``experiment``): shown as ``(required)``."""

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()
TOP = ""  # the section of top-level keys


@dataclass(frozen=True)
class FieldRow:
    """One key of a config: where it sits, what it holds and what it may hold."""

    section: str  # the dotted path of the block holding it: "" (top level), "train.optimizer", "variants[0]"
    key: str  # the full dotted key, as an override spells it: "train.optimizer.lr", "variants[0].r1"
    type: str  # the annotation, readably: "int", "list[float]", "float | None", "str" (for a Literal)
    value: Any  # the resolved value
    default: Any  # the schema's default, or NO_DEFAULT for a required key
    bounds: str  # "> 0", "[0, 1)", "each >= 0" (a list), "quadrature, mc" (a Literal's choices), or ""
    help: str  # the field's help text, or ""

    @property
    def name(self) -> str:
        """The key's own name within its section (``lr`` for ``train.optimizer.lr``)."""
        return self.key[len(self.section) + 1:] if self.section else self.key

    @property
    def schema_key(self) -> str:
        """The schema's key the row belongs to (``variants`` for ``variants[0].r1``), as
        :func:`vlab.trees.schema_keys` spells it."""
        return self.key.split("[", 1)[0]

    @property
    def changed(self) -> bool:
        """Whether the resolved value differs from the schema's default (a required key never does)."""
        return self.default is not NO_DEFAULT and not _same(self.value, self.default)


def describe(cls: Any, cfg: Any = None) -> list[FieldRow]:
    """Every key of an experiment's config schema as a :class:`FieldRow`, section by section: the keys of a
    section first, then its nested sections depth-first in the schema's order.

    ``cls`` is an experiment class (its ``Config`` is the schema) or a config dataclass itself; ``cfg`` is the
    resolved config, an instance of that schema (``vlab.harness.loading.load_config``'s second result), or None
    for the schema's defaults.
    """
    return _describe(cls, cfg)[0]


def section_docs(cls: Any, cfg: Any = None) -> dict[str, str]:
    """The first line of each nested section's class docstring, by section path (``train``, ``variants[0]``),
    for :func:`format_rows`."""
    return {k: v for k, v in _describe(cls, cfg)[1].items() if k and v}


def _describe(cls: Any, cfg: Any) -> tuple[list[FieldRow], dict[str, str]]:
    schema = cls if dataclasses.is_dataclass(cls) and isinstance(cls, type) else cls.Config
    rows: list[FieldRow] = []
    docs: dict[str, str] = {}
    defaults = _defaults(schema, None)
    if cfg is None:
        try:
            cfg = schema()
        except TypeError:  # a field without any default: walk the defaults there are
            cfg = defaults
    _walk(schema, cfg, defaults, TOP, rows, docs)
    return rows, docs


def title(cls: Any) -> str:
    """The first line of an experiment's description: ``kl_fit: Inclusive vs exclusive KL ... [seed 001, ...]``."""
    name = getattr(cls, "name", "") or getattr(cls, "__name__", "")
    desc = getattr(cls, "description", "")
    source = getattr(cls, "source", "")
    return name + (f": {desc}" if desc else "") + (f" [{source}]" if source else "")


# ----------------------------------------------------------------------------------------------- walking


def _walk(schema: type, value: Any, defaults: dict[str, Any], section: str, rows: list[FieldRow],
          docs: dict[str, str]) -> None:
    docs[section] = _doc_line(schema)
    hints = typing.get_type_hints(schema)
    later: list[tuple[type, Any, dict[str, Any], str]] = []
    for f in dataclasses.fields(schema):
        t = hints.get(f.name, Any)
        key = f"{section}.{f.name}" if section else f.name
        v = _get(value, f.name)
        d = defaults.get(f.name, NO_DEFAULT)
        sub = _dataclass_type(t, v)
        if sub is not None:
            later.append((sub, v, _defaults(sub, d), key))
            continue
        item = _list_item_type(t, v)
        meta = dict(f.metadata)
        if item is not None:
            doc = _doc_line(item)
            rows.append(FieldRow(section, key, _type_name(t), v, d, _bounds(t, meta), meta.get("help") or doc))
            given = d if isinstance(d, list) else []  # entry i's default: the default list's entry i, if any
            for i, entry in enumerate(v if isinstance(v, list) else []):
                later.append((type(entry) if dataclasses.is_dataclass(entry) else item, entry,
                              _defaults(item, given[i] if i < len(given) else None), f"{key}[{i}]"))
            continue
        rows.append(FieldRow(section, key, _type_name(t), v, d, _bounds(t, meta), meta.get("help") or ""))
    for sub, v, d, key in later:
        _walk(sub, v, d, key, rows, docs)


def _get(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name, NO_DEFAULT)
    return getattr(value, name, NO_DEFAULT)


def _defaults(schema: type, instance: Any) -> dict[str, Any]:
    """A schema's defaults by field name: the values of ``instance`` (the default a parent gives the section, e.g.
    ``nested(OptimizerConfig, lr=1e-3)``), or else each field's own default."""
    if dataclasses.is_dataclass(instance) and not isinstance(instance, type):
        return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            d = f.default
        elif f.default_factory is not dataclasses.MISSING:
            d = f.default_factory()
        else:
            d = NO_DEFAULT
        out[f.name] = NO_DEFAULT if isinstance(d, str) and d == MISSING else d
    return out


def _dataclass_type(t: Any, value: Any) -> type | None:
    """The dataclass a field holds (its value's class first, so a subclass's keys are shown), or None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value)
    if isinstance(t, type) and dataclasses.is_dataclass(t):
        return t
    return None


def _list_item_type(t: Any, value: Any) -> type | None:
    """The dataclass of a list-of-dataclasses field's entries, or None for any other field."""
    if typing.get_origin(t) is list:
        args = typing.get_args(t)
        if args and isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
            return args[0]
    if isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
        return type(value[0])
    return None


def _type_name(t: Any) -> str:
    """``int``, ``list[float]``, ``float | None``, ``dict[str, Any]``; a Literal is the type of its choices."""
    if t is Any:
        return "Any"
    if t is type(None):
        return "None"
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is Literal:
        names = sorted({type(a).__name__ for a in args})
        return " | ".join(names)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(_type_name(a) for a in args)}]" if args else base
    if isinstance(t, type):
        return t.__name__
    return str(t).replace("typing.", "")


def _bounds(t: Any, meta: dict) -> str:
    """The field's bounds (``> 0``, ``[0, 1)``; ``each >= 0`` for a list) or a Literal's choices."""
    if typing.get_origin(t) is Literal:
        return ", ".join(format_value(c) for c in typing.get_args(t))
    lo = [(meta.get("gt"), ">", "("), (meta.get("ge"), ">=", "[")]
    hi = [(meta.get("lt"), "<", ")"), (meta.get("le"), "<=", "]")]
    low = next(((b, op, br) for b, op, br in lo if b is not None), None)
    high = next(((b, op, br) for b, op, br in hi if b is not None), None)
    if low and high:
        text = f"{low[2]}{_number(low[0])}, {_number(high[0])}{high[2]}"
    elif low:
        text = f"{low[1]} {_number(low[0])}"
    elif high:
        text = f"{high[1]} {_number(high[0])}"
    else:
        return ""
    return f"each {text}" if typing.get_origin(t) is list else text


def _number(b: Any) -> str:
    return f"{b:g}" if isinstance(b, float) else str(b)


def _doc_line(cls: type) -> str:
    """The first paragraph of a class's own docstring, joined onto one line ("" for the signature that
    dataclasses generate when a class has none)."""
    doc = (cls.__dict__.get("__doc__") or "").strip()
    if doc.startswith(f"{cls.__name__}("):
        return ""
    first = []
    for line in doc.splitlines():
        if not line.strip():
            break
        first.append(line.strip())
    return " ".join(first).replace("``", "")


def _same(a: Any, b: Any) -> bool:
    """Equal values (``1`` and ``1.0`` are, ``1`` and ``true`` are not; entries of lists and dataclasses alike)."""
    if dataclasses.is_dataclass(a) or dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))  # type: ignore[arg-type]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, float) or isinstance(b, float):  # a YAML spelling of 2/3 is the default 2/3
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-12)
    return a == b


# ---------------------------------------------------------------------------------------------- the table


def format_value(v: Any) -> str:
    """A value as YAML would spell it, compactly: ``true``, ``null``, ``0.3``, ``[-3.0, 3.0]``, ``{nesterov: true}``;
    a long float to 6 digits; a required key's missing default as ``(required)``."""
    if v is NO_DEFAULT:
        return "(required)"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        r = repr(v)
        return r if len(r) <= 10 else f"{v:.6g}"
    if isinstance(v, str):
        return v if v and v.strip() == v else f"'{v}'"
    if isinstance(v, list | tuple):
        if v and all(dataclasses.is_dataclass(x) for x in v):
            return f"{len(v)} entr{'y' if len(v) == 1 else 'ies'}"
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {format_value(x)}" for k, x in v.items()) + "}"
    if dataclasses.is_dataclass(v):
        return type(v).__name__
    return str(v)


COLUMNS = ("key", "type", "value", "default", "allowed", "help")
_HARD_CAP = {"key": 30, "type": 24, "value": 28, "default": 28, "allowed": 24}
_SOFT_CAP = {"key": 18, "type": 12, "value": 14, "default": 14, "allowed": 17}
_SHRINK_ORDER = ("allowed", "value", "default", "type")  # a key is never broken
_MIN_HELP = 32
_GAP = "  "


def format_rows(rows: list[FieldRow], *, width: int = 120, heading: str = "",
                docs: dict[str, str] | None = None) -> str:
    """The rows as a table grouped by section, no line longer than ``width``: a column each for the key, its type,
    value, default, allowed values and help text; cells too long for their column wrap onto further lines. A
    value that differs from its default is marked ``*`` in the left margin.

    Args:
        rows: the rows of :func:`describe`, in its order.
        width: the terminal's width in characters.
        heading: a first line (e.g. :func:`title`), wrapped to ``width``; none when empty.
        docs: a one-line description per section path, shown beside its name (``{"train": "How long ..."}``).

    Returns:
        The table as text, ending without a newline.
    """
    docs = docs or {}
    cells = [_cells(r) for r in rows]
    widths = _widths(cells, width)
    out: list[str] = []
    if heading:
        out += textwrap.wrap(heading, width, subsequent_indent="  ") or [heading]
    out.append(f"(* marks a value that differs from the schema's default; {sum(r.changed for r in rows)} do)")
    out.append("")
    out += _line(dict(zip(COLUMNS, COLUMNS, strict=True)), widths, " ")
    section = None
    for row, cell in zip(rows, cells, strict=True):
        if row.section != section:
            section = row.section
            name = section or "(top level)"
            doc = docs.get(section, "")
            out.append("")
            out += textwrap.wrap(f"{name}  {doc}" if doc else name, width, subsequent_indent="    ") or [name]
        out += _line(cell, widths, "*" if row.changed else " ")
    return "\n".join(line.rstrip() for line in out)


def _cells(row: FieldRow) -> dict[str, str]:
    kind, text = row.type, row.help
    if isinstance(row.value, list) and row.value and all(dataclasses.is_dataclass(v) for v in row.value):
        kind = "list"  # of sub-configurations: each entry is a block of its own below
        entry = type(row.value[0]).__name__
        text = f"{entry} entries, a block each below" + (f": {text}" if text else "")
    return {"key": row.name, "type": kind, "value": format_value(row.value),
            "default": format_value(row.default), "allowed": row.bounds, "help": text}


def _widths(cells: list[dict[str, str]], width: int) -> dict[str, int]:
    """Each column's width: its longest cell up to a hard cap, then, while the help column would be narrower than
    ``_MIN_HELP``, narrowed towards a soft cap: the allowed values, value and default first, then the type (never
    the key)."""
    w = {c: max([len(c)] + [len(x[c]) for x in cells]) for c in COLUMNS[:-1]}
    w = {c: min(n, _HARD_CAP[c]) for c, n in w.items()}
    fixed = lambda: 2 + sum(w.values()) + len(_GAP) * len(w)  # noqa: E731 - margin, columns and their gaps
    for c in _SHRINK_ORDER:
        while width - fixed() < _MIN_HELP and w[c] > _SOFT_CAP[c]:
            w[c] -= 1
    w["help"] = max(12, width - fixed())
    return w


def _line(cell: dict[str, str], widths: dict[str, int], mark: str) -> list[str]:
    """One row's lines: every cell wrapped to its column, the columns side by side."""
    wrapped = {c: _wrap(cell[c], widths[c]) for c in COLUMNS}
    n = max(len(v) for v in wrapped.values())
    lines = []
    for i in range(n):
        parts = [(wrapped[c][i] if i < len(wrapped[c]) else "").ljust(widths[c]) for c in COLUMNS]
        lines.append(f"{mark if i == 0 else ' '} " + _GAP.join(parts))
    return lines


_TOKEN = re.compile(r"[^\s\[,]*[\[,]?\s*")


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces or after ``[`` and ``,`` (so
    ``list[RegulariserConfig]`` breaks after the bracket), a word longer than a line split where it must."""
    lines: list[str] = []
    line = ""
    for token in (t for t in _TOKEN.findall(text) if t):
        if len((line + token).rstrip()) <= width:
            line += token
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = token
        while len(line.rstrip()) > width:
            lines.append(line[:width])
            line = line[width:]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines
