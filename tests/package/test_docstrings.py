"""Docstrings across vlab: every public module, class and function has one, and every public function with more
than four parameters documents them in an ``Args:`` section and its result in a ``Returns:`` (or ``Yields:``)
section, Google style."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import vlab

SKIP = {"vlab.__main__"}
ARGS = re.compile(r"^\s*Args:\s*$", re.MULTILINE)
RETURNS = re.compile(r"^\s*(Returns|Yields):\s*$", re.MULTILINE)


def _modules():
    """Every module of vlab, vlab.experiments included (it installs from the top-level experiments/ folder)."""
    experiments = importlib.import_module("vlab.experiments")
    names = ["vlab", "vlab.experiments"]
    for package, prefix in ((vlab, "vlab."), (experiments, "vlab.experiments.")):
        names += [m.name for m in pkgutil.walk_packages(package.__path__, prefix)]
    names = sorted(n for n in set(names) if n not in SKIP)
    return [importlib.import_module(n) for n in names]


def _public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def _defined(module):
    """The public functions and classes of ``module`` defined in it (not imported into it), each once."""
    seen = set()
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or id(obj) in seen:
            continue
        target = inspect.unwrap(obj) if callable(obj) else obj  # jax.jit and functools.wraps keep __wrapped__
        if not (inspect.isfunction(target) or inspect.isclass(target)):
            continue
        if getattr(target, "__module__", None) != module.__name__:
            continue
        seen.add(id(obj))
        yield name, target


def _contract_class(module, name: str, obj) -> bool:
    """An experiment module's ``Config`` and ``Experiment``: the contract's fixed names, documented by the module's
    docstring, the experiment's ``description`` and the ``help=`` of each config key."""
    return module.__name__.startswith("vlab.experiments.") and (
        (name == "Config" and bool(module.__doc__)) or (name == "Experiment" and bool(getattr(obj, "description", ""))))


def _doc(obj) -> str:
    """The docstring written for ``obj``: a class's own (not inherited), and not the signature that dataclasses and
    named tuples generate."""
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    doc = (doc or "").strip()
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc


def _n_params(fn) -> int:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params if p not in ("self", "cls"))


def test_every_public_module_class_and_function_has_a_docstring():
    missing = []
    for module in _modules():
        if not _public(module.__name__):
            continue
        if not (module.__doc__ or "").strip():
            missing.append(f"{module.__name__} (module)")
        for name, obj in _defined(module):
            if not _doc(obj) and not _contract_class(module, name, obj):
                kind = "class" if inspect.isclass(obj) else "function"
                missing.append(f"{module.__name__}.{name} ({kind})")
    assert not missing, "public objects without a docstring:\n  " + "\n  ".join(missing)


def test_functions_with_more_than_four_parameters_have_args_and_returns_sections():
    offenders = []
    for module in _modules():
        if not _public(module.__name__):
            continue
        for name, obj in _defined(module):
            if inspect.isclass(obj) or _n_params(obj) <= 4:
                continue
            doc = _doc(obj)
            lacks = [s for s, pattern in (("Args:", ARGS), ("Returns:/Yields:", RETURNS)) if not pattern.search(doc)]
            if lacks:
                offenders.append(f"{module.__name__}.{name} ({_n_params(obj)} parameters) lacks {', '.join(lacks)}")
    assert not offenders, "functions with more than four parameters lacking sections:\n  " + "\n  ".join(offenders)
