"""vlab.harness.describe: a row for every key of every built-in schema, with its type, default, bounds and help,
and a table that keeps to its width."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from vlab.harness.config import BaseConfig, nested, spec
from vlab.harness.describe import NO_DEFAULT, describe, format_rows, format_value, section_docs, title
from vlab.harness.experiment import builtin_names, resolve
from vlab.harness.loading import builtin_configs, load_config
from vlab.trees import schema_keys


@pytest.mark.parametrize("name", builtin_names())
def test_every_schema_key_has_a_row_with_a_type(name):
    cls = resolve(name)
    rows = describe(cls)
    assert {r.schema_key for r in rows} == set(schema_keys(cls.Config))
    assert len({r.key for r in rows}) == len(rows)
    assert all(r.type for r in rows), [r.key for r in rows if not r.type]
    assert not any(r.changed for r in rows)  # the schema's own defaults
    text = format_rows(rows, width=120, heading=title(cls), docs=section_docs(cls))
    assert max(len(line) for line in text.splitlines()) <= 120


@pytest.mark.parametrize("config", sorted(builtin_configs()))
def test_every_builtin_config_is_described_within_120_columns(config):
    cls, cfg = load_config(config)
    rows = describe(cls, cfg)
    assert {r.schema_key for r in rows} == set(schema_keys(cls.Config))
    text = format_rows(rows, width=120, docs=section_docs(cls, cfg))
    assert max(len(line) for line in text.splitlines()) <= 120
    for r in rows:
        assert r.value == _lookup(cfg, r.key)


def _lookup(cfg, key: str):
    node = cfg
    for part in key.replace("[", ".[").split("."):
        node = node[int(part[1:-1])] if part.startswith("[") else getattr(node, part)
    return node


def test_the_n_inits_row_is_the_schema_field():
    cls, cfg = load_config("kl_fit", ["n_inits=3"])
    f = next(f for f in dataclasses.fields(cls.Config) if f.name == "n_inits")
    row = next(r for r in describe(cls, cfg) if r.key == "n_inits")
    assert (row.section, row.type, row.value, row.default) == ("", "int", 3, f.default)
    assert row.bounds == f"> {f.metadata['gt']}" and row.help == f.metadata["help"] and row.help
    assert row.changed


def test_nested_sections_follow_the_top_level_keys():
    cls, cfg = load_config("kl_fit")
    sections = list(dict.fromkeys(r.section for r in describe(cls, cfg)))
    assert sections[0] == "" and "train" in sections and "train.optimizer" in sections
    assert sections.index("train") < sections.index("train.optimizer")
    lr = next(r for r in describe(cls, cfg) if r.key == "train.optimizer.lr")
    assert lr.name == "lr" and lr.section == "train.optimizer"


def test_every_base_key_has_help():
    rows = describe(BaseConfig)
    assert all(r.help for r in rows), [r.key for r in rows if not r.help]
    experiment = next(r for r in rows if r.key == "experiment")
    assert experiment.default is NO_DEFAULT and format_value(experiment.default) == "(required)"
    assert next(r for r in rows if r.key == "device").bounds == "auto, cpu, gpu, tpu"


@dataclass
class _Item:
    """An entry of a list."""

    x: float = spec(1.0, ge=0, help="the x")
    tag: str = "t"


@dataclass
class _Inner:
    """An inner section."""

    k: int = spec(5, gt=0, le=10, help="between")


@dataclass
class _Schema:
    """A schema for the tests."""

    a: int = spec(1, gt=0, help="positive")
    b: float = spec(0.5, ge=0, lt=1, help="a fraction")
    c: Literal["p", "q"] = "p"
    d: list[float] = spec([1.0, 2.0], gt=0)
    e: float | None = None
    items: list[_Item] = field(default_factory=lambda: [_Item(2.0), _Item(3.0, "u")])
    inner: _Inner = nested(_Inner, k=7)


def test_types_bounds_and_defaults_of_every_kind_of_field():
    rows = {r.key: r for r in describe(_Schema)}
    assert list(rows) == ["a", "b", "c", "d", "e", "items", "items[0].x", "items[0].tag", "items[1].x",
                          "items[1].tag", "inner.k"]  # a section's own keys, then its sections in the schema's order
    assert [rows[k].type for k in ("a", "b", "c", "d", "e", "items")] == [
        "int", "float", "str", "list[float]", "float | None", "list[_Item]"]
    assert [rows[k].bounds for k in ("a", "b", "c", "d", "e", "inner.k")] == [
        "> 0", "[0, 1)", "p, q", "each > 0", "", "(0, 10]"]
    assert rows["inner.k"].default == 7  # the default the parent gives the section
    assert rows["items[1].x"].default == 3.0 and rows["items[1].tag"].default == "u"
    assert rows["items"].help == "An entry of a list."
    assert rows["items[0].x"].schema_key == "items" and rows["items[0].x"].section == "items[0]"


def test_changed_values_are_marked():
    cfg = _Schema(a=2, items=[_Item(2.0), _Item(3.0, "u"), _Item()], inner=_Inner(k=7))
    rows = {r.key: r for r in describe(_Schema, cfg)}
    assert {k for k, r in rows.items() if r.changed} == {"a", "items"}  # items[2] has no default entry: its own
    assert rows["items[2].x"].default == 1.0
    text = format_rows(list(rows.values()), width=80)
    marked = [line.split()[1] for line in text.splitlines() if line.startswith("*")]
    assert marked == ["a", "items"]
    assert max(len(line) for line in text.splitlines()) <= 80


def test_format_value_spells_values_as_yaml_does():
    assert [format_value(v) for v in (True, None, 0.3, 1 / 3, [1.0, 2], {"n": True}, "")] == [
        "true", "null", "0.3", "0.333333", "[1.0, 2]", "{n: true}", "''"]
