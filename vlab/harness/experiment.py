"""The experiment contract: an experiment is a schema and a few fixed sections; the base class runs them.

A module declares its ``Config`` (a :class:`vlab.harness.config.BaseConfig` dataclass) and a subclass of
:class:`Experiment` with a one-line ``description``; it is named once, by its module (``experiments/kl_fit.py`` is
``experiment: kl_fit``; a user's own is named by import path, ``experiment: my_lab.objectives:RenyiVAE``). The
sections, in the order :meth:`Experiment.run` calls them:

``setup(cfg)``                       data, static specs: whatever the other sections share (kept on ``self``)
``init(cfg, key)``                   the initial parameters of one member, from its ``"init"`` key
``hyperparameters(cfg)``             per-member arrays of what is not trained (a KL weight, ...): the ``hp``
``objective(cfg)``                   ``loss(params, batch, key, hp) -> (loss, aux)``
``train(cfg)``                       the fits, ``{name: FitResult}``; by default one fit of ``objective`` from ``init``
``evaluate(cfg, params, key, hp)``   one member, jittable: the base class vmaps and jits it over members
``summarise(cfg, fits, evals)``      the metrics dict, with closed-form checks (:meth:`check`)
``figures(cfg, fits, evals, metrics)``  figures (:meth:`save_figure`)

The base class owns what every experiment used to write again: named key streams (:meth:`key`,
:meth:`keys`: typed keys, ``fold_in`` by stream name, so a member of a sweep gets exactly the keys of its
separate run), the members (:attr:`members`), building :func:`vlab.engine.fit` from a :class:`TrainConfig` with the
run folder's history, checkpoints, progress and timings (:meth:`fit`), the member table of a sweep
(:meth:`member_rows`), and the device and precision the config asks for. A multi-phase experiment overrides
:meth:`train` and calls :meth:`fit` once per phase.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import numpy as np

from vlab import keys as vkeys
from vlab.engine import BatchFn, FitResult, LossFn
from vlab.engine import callbacks as cb
from vlab.engine import fit as engine_fit
from vlab.engine.members import Members
from vlab.errors import ConfigError, TrainingDiverged
from vlab.harness.config import BaseConfig, TrainConfig, build_optimizer

BUILTIN_PACKAGE = "vlab.experiments"


class Experiment:
    """Base class of an experiment: a schema, a description and the sections above.

    ``headline`` lists dotted metric keys shown in ``vlab reproduce``'s index; ``source`` names the seed question.
    ``member_keys`` lists the dotted config keys the experiment can vary per member of one vmapped program (see
    :mod:`vlab.engine.members`): a sweep over only these keys runs as a single compiled program.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""  # the seed question it answers, e.g. "seed 001, problem 6.3"
    Config: ClassVar[type[BaseConfig]] = BaseConfig
    headline: ClassVar[tuple[str, ...]] = ()
    member_keys: ClassVar[tuple[str, ...]] = ()

    cfg: Any
    out: Any
    members: Members
    mesh: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__module__.rsplit(".", 1)[-1]

    # ------------------------------------------------------------------------------------------ running
    def run(self, cfg: Any, run: Any, *, members: Sequence[dict] | None = None, mesh: Any = None) -> dict:
        """Run the sections on ``cfg``, writing into the run folder ``run``; returns the metrics.

        ``members`` are sweep points (dicts of dotted ``member_keys`` to values) trained as one vmapped program
        with the config's ``n_seeds`` each; ``mesh`` a ("data", "sweep") :class:`jax.sharding.Mesh`. The config's
        ``precision`` and ``device`` hold for the call (float64 is switched back off afterwards)."""
        from vlab.engine import runtime
        from vlab.harness.plots import style

        x64 = bool(jax.config.jax_enable_x64)
        device = runtime.configure(getattr(cfg, "device", "auto"), getattr(cfg, "precision", "float32"))
        try:
            with jax.default_device(device), style():
                self.cfg, self.out, self.mesh = cfg, run, mesh
                self.swept = bool(members)
                self.members = self.expand_members(Members(cfg, members, self.n_seeds(cfg)))
                if hasattr(run, "member_labels"):
                    run.member_labels = self.members.labels()
                return self.sections(cfg)
        finally:
            jax.config.update("jax_enable_x64", x64)

    def sections(self, cfg: Any) -> dict:
        """setup, train, evaluate, summarise, figures."""
        self.setup(cfg)
        fits = self.train(cfg)
        with self.out.timed("evaluate"):
            evals = self.evaluate_fits(cfg, fits)
            metrics = self.summarise(cfg, fits, evals)
        if not self.swept:
            metrics.pop("members", None)
        with self.out.timed("plots"):
            self.figures(cfg, fits, evals, metrics)
        return metrics

    # ------------------------------------------------------------------------------------------ sections
    def setup(self, cfg: Any) -> None:
        """Load data and build what the other sections share."""

    def init(self, cfg: Any, key: jax.Array) -> Any:
        """The initial parameters of one member."""
        raise NotImplementedError(f"{type(self).__name__} trains but defines no init(cfg, key)")

    def hyperparameters(self, cfg: Any) -> dict[str, np.ndarray]:
        """Per-member values of what the objective takes but does not train, one array each of length
        ``len(self.members)`` (use :meth:`Members.values`)."""
        return {}

    def objective(self, cfg: Any) -> LossFn:
        """The objective ``loss(params, batch, key, hp) -> (loss, aux)``."""
        raise NotImplementedError(f"{type(self).__name__} trains but defines no objective(cfg)")

    def data(self, cfg: Any) -> tuple[Any, BatchFn | None]:
        """What the objective is trained on: ``(data, batch_fn)`` (see :func:`vlab.engine.fit`)."""
        return None, None

    def train(self, cfg: Any) -> dict[str, FitResult]:
        """The fits: by default one, named after the experiment, of :meth:`objective` from :meth:`init` (none when
        the experiment defines no :meth:`init`: it trains nothing)."""
        if type(self).init is Experiment.init:
            return {}
        data, batch_fn = self.data(cfg)
        params = self.init_members(cfg)
        return {self.name: self.fit(self.name, self.objective(cfg), params, data=data, batch_fn=batch_fn)}

    def evaluate(self, cfg: Any, params: Any, key: jax.Array, hp: dict) -> dict:
        """Measurements of one trained member (jittable); the base class vmaps it over members."""
        return {}

    def summarise(self, cfg: Any, fits: dict[str, FitResult], evals: dict) -> dict:
        """The metrics (nested dicts of numbers), with closed-form checks recorded by :meth:`check`."""
        return {}

    def figures(self, cfg: Any, fits: dict[str, FitResult], evals: dict, metrics: dict) -> None:
        """Draw and save figures."""

    # ------------------------------------------------------------------------------------------ members
    def n_seeds(self, cfg: Any) -> int:
        """Members per sweep point."""
        return int(getattr(cfg, "n_seeds", 1))

    def expand_members(self, members: Members) -> Members:
        """The members to train: the sweep's, or more (a list-valued key as :meth:`Members.expand`)."""
        return members

    def keys(self, name: str) -> jax.Array:
        """One key of stream ``name`` per member: member ``j`` of a point with seed ``s`` gets
        ``split(stream(s, name), n_seeds)[j]``, the key its separate run gets."""
        return self.members.keys(lambda seed: vkeys.stream(seed, name))

    def key(self, name: str) -> jax.Array:
        """The run's key of stream ``name`` (data, figures: what all members share)."""
        return vkeys.stream(self.cfg.seed, name)

    def init_members(self, cfg: Any) -> Any:
        """:meth:`init` of every member from its ``"init"`` key, stacked along a leading axis."""
        return jax.jit(jax.vmap(lambda k: self.init(cfg, k)))(self.keys("init"))

    def member_hp(self, cfg: Any) -> dict[str, Any]:
        """Every member's hyperparameters: :meth:`hyperparameters` and, when the sweep sets the learning rate,
        ``lr_factor`` (the member's learning rate over the config's)."""
        hp = {k: np.asarray(v) for k, v in self.hyperparameters(cfg).items()}
        factors = self.members.lr_factors()
        if factors is not None:
            hp["lr_factor"] = factors
        dtype = jax.numpy.asarray(0.0).dtype
        return {k: jax.numpy.asarray(v, dtype if np.issubdtype(np.asarray(v).dtype, np.floating) else None)
                for k, v in hp.items()}

    def member_rows(self, per_member: dict[str, Sequence[float | None]]) -> list[dict]:
        """The member table of a sweep: one row per member with its point's values, its seed index and the
        metrics ``per_member`` (dotted names to one value per member)."""
        return self.members.rows(per_member)

    # ------------------------------------------------------------------------------------------ fitting
    def fit(self, name: str, loss_fn: LossFn, params: Any, *, data: Any = None, batch_fn: BatchFn | None = None,
            hp: dict | None = None, keys: jax.Array | None = None, train: TrainConfig | None = None,
            optimizer: Any = None) -> FitResult:
        """:func:`vlab.engine.fit` of one phase, named ``name``, with this run's callbacks.

        Defaults: ``train`` is ``cfg.train``; ``optimizer`` the one it names; ``keys`` the members' keys of stream
        ``"train/<name>"`` (pass one key for a fit that is not vmapped); ``hp`` :meth:`member_hp`. History rows,
        checkpoints (``checkpoints/<name>.npz``, resumed when the run is), progress and timings go to the run."""
        from vlab.engine.sharding import shard_members

        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"fit name {name!r}: expected letters, digits, '-', '_' or '.' (it names "
                             "checkpoints/<name>.npz and the history's fit column)")
        tc = train if train is not None else self.cfg.train
        optimizer = optimizer if optimizer is not None else build_optimizer(tc.optimizer, tc.steps)
        keys = keys if keys is not None else self.keys(f"train/{name}")
        hp = hp if hp is not None else (self.member_hp(self.cfg) if keys.ndim else {})
        try:
            params, keys, hp, data, batch_fn = shard_members(self.mesh, params, keys, hp, data, batch_fn)
        except ValueError as e:
            raise ConfigError(f"key 'parallel.sweep': value {self.mesh.shape['sweep']} is not valid for '{name}': "
                              f"{e}") from None
        run = self.out
        labels = self.members.labels() if keys.ndim and len(self.members) == keys.shape[0] else None
        callbacks: list[cb.Callback] = [cb.Checkpoint(run, name, tc.checkpoint_every, run.checkpoint_seconds),
                                        cb.History(run, name, labels), cb.Timings(run),
                                        cb.ProgressBar(name, enabled=not run.quiet)]
        try:
            return engine_fit(loss_fn, params, optimizer, keys, steps=tc.steps, hp=hp, data=data,
                              batch_fn=batch_fn, chunk_size=tc.chunk_size, log_every=tc.log_every,
                              callbacks=callbacks)
        except TrainingDiverged as e:
            raise TrainingDiverged(f"[{name}] {e} (kept in checkpoints/{name}.npz)") from None

    def evaluate_fits(self, cfg: Any, fits: dict[str, FitResult]) -> dict:
        """:meth:`evaluate` of every member of the experiment's own fit (``fits[self.name]``), vmapped and jitted,
        as host arrays with a leading member axis ({} when the experiment evaluates nothing)."""
        if type(self).evaluate is Experiment.evaluate or self.name not in fits:
            return {}
        return self.evaluate_members(cfg, fits[self.name].params)

    def evaluate_members(self, cfg: Any, params: Any, stream: str = "evaluate") -> dict:
        """:meth:`evaluate` of every member of ``params`` (stacked), with keys of ``stream``."""
        one = lambda p, k, h: self.evaluate(cfg, p, k, h)  # noqa: E731
        out = jax.jit(jax.vmap(one))(params, self.keys(stream), self.member_hp(cfg))
        return jax.tree.map(np.asarray, out)

    # ------------------------------------------------------------------------------------------ the run folder
    def check(self, name: str, value: float, reference: float, tol: float) -> bool:
        """Record a measured value against its closed form: ``|value - reference| <= tol``."""
        return self.out.check(name, value, reference, tol)

    def log(self, message: str) -> None:
        self.out.log(message)

    def warn(self, message: str) -> None:
        self.out.warn(message)

    def save_figure(self, fig: Any, name: str) -> None:
        """Save ``fig`` as ``name`` in the run folder (in every configured format); :func:`vlab.run` also returns
        it, open, in ``Result.figures[name]``."""
        self.out.save_figure(fig, name)

    def member_title(self, i: int = 0) -> str:
        """Which member a figure shows, for its title ('' for a single member)."""
        from vlab.harness.plots import member_title

        return member_title(self.members, i)


def builtin_names() -> list[str]:
    """Short names of the experiments shipped in the ``experiments`` package."""
    pkg = importlib.import_module(BUILTIN_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def resolve(name: str) -> type[Experiment]:
    """The experiment class a config names: a built-in short name or ``module.path:ClassName``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"key 'experiment': value {name!r} is not valid: expected an experiment name")
    if ":" in name:
        module_name, _, attr = name.partition(":")
    else:
        module_name, attr = f"{BUILTIN_PACKAGE}.{name}", "Experiment"
        if name not in builtin_names():
            raise ConfigError(
                f"key 'experiment': unknown experiment '{name}': expected one of "
                f"{', '.join(builtin_names())}, or an import path 'module:Class'"
            )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"key 'experiment': cannot import module '{module_name}' ({e})") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise ConfigError(
            f"key 'experiment': '{name}' does not name a vlab.Experiment subclass "
            f"(looked for '{attr}' in module '{module_name}')"
        )
    return cls

