"""Normalizing flows trained by forward KL (maximum likelihood) and reverse KL (variational), seed 002 question 3.

With samples of ``P_X`` the flow minimises ``KL[P_X || P_F(U)]``: the mean negative log-likelihood
``-(1/N) sum_n [log P_U(F^-1(x_n)) + log|det J_F^-1(x_n)|]`` (question 3.2b). With an unnormalised density
``p~ = Z P_X`` it minimises ``KL[P_F(U) || P_X] = E_u[log P_U(u) - log|det J_F(u)| - log p~(F(u))] + log Z``
(question 3.2a). Targets carry their exact (or grid) ``log Z`` and, for data sets, their exact density, so every
KL reported is absolute. For a target with a density the run also measures both sides of question 3.1,
``KL[P_X || P_F(U)] = KL[P_F^-1(X) || P_U]``, on independent samples, and checks that they agree within their
standard errors. ``objective: both`` fits one multimodal target both ways: mass covering against mode seeking.
``tempering: {beta0, steps}`` trains the reverse KL against ``p~(x)^beta_t`` with ``beta_t`` rising linearly from
``beta0`` to 1 over the first ``steps`` steps (annealing), which lets a mode-seeking fit spread over more modes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab import densities, flows, plots
from vlab.config import BaseConfig, OptimizerConfig, TrainConfig, build_optimizer, nested, spec
from vlab.errors import ConfigError
from vlab.experiment import Experiment as _Experiment
from vlab.members import Members
from vlab.objectives import flow as fo
from vlab.train import fit

# ------------------------------------------------------------------------------------------------ config


@dataclass
class FlowConfig:
    """The bijection stack: ``layers`` units of one ``kind``, base side first."""

    kind: Literal["affine", "spline", "planar"] = "affine"
    layers: int = spec(8, ge=1, help="coupling or planar layers")
    hidden: int = spec(64, ge=1, help="conditioner MLP width")
    depth: int = spec(2, ge=1, help="conditioner MLP hidden layers")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "gelu"
    affine_scale: Literal["exp", "softplus"] = spec("softplus", help="coupling scale: exp(c tanh(s/c)) or softplus")
    bins: int = spec(8, ge=2, help="spline bins (kind: spline)")
    bound: float = spec(4.0, gt=0, help="splines act on [-bound, bound], identity outside")
    direction: Literal["data_to_base", "base_to_data"] = spec(
        "data_to_base", help="the direction in which each coupling is affine (or a spline)")
    mixing: Literal["alternate", "rotation"] = spec(
        "alternate", help="between couplings: masks alternate only, or also a fixed random rotation")
    bias_init: float = spec(2.5, ge=0, help="conditioner hidden biases start U(-b, b), spreading the units' kinks")
    standardize: bool = spec(True, help="a last elementwise affine layer starts at the data's mean and std")


@dataclass
class TemperingConfig:
    """Reverse KL against ``p~^beta_t`` with ``beta_t`` rising linearly from ``beta0`` to 1 over ``steps`` steps."""

    beta0: float = spec(1.0, gt=0, le=1, help="starting inverse temperature (1: no tempering)")
    steps: int = spec(0, ge=0, help="steps over which beta rises to 1 (0: no tempering)")


@dataclass
class Config(BaseConfig):
    """A flow fit to one target by forward KL, reverse KL or both."""

    experiment: str = "flow_kl"
    target: str = spec("two_moons", help="a name in vlab.densities.TARGETS, or 'file' with data_path")
    objective: Literal["forward", "reverse", "both"] = "forward"
    data_path: str | None = spec(None, help="samples (n, d) in a .npy or .csv file, for target: file")
    dim: int | None = spec(None, ge=1, help="the flow's dimension (default: the target's)")
    n_seeds: int = spec(1, ge=1, help="independent initialisations trained as one vmapped program")
    batch_size: int = spec(256, ge=2, help="data points (forward) or flow samples (reverse) per step")
    n_eval: int = spec(10000, ge=2, help="fresh test points and flow samples for the estimates")
    stick_the_landing: bool = spec(False, help="reverse KL: drop the score term from the gradient (Roeder 2017)")
    tempering: TemperingConfig = nested(TemperingConfig)
    coverage_share: float = spec(0.5, gt=0, le=1, help="a mode is covered with >= this share of its mass")
    grid: int = spec(160, ge=16, help="heat-map resolution per axis")
    flow: FlowConfig = nested(FlowConfig)
    train: TrainConfig = nested(TrainConfig, steps=2000, chunk_size=500, log_every=20,
                                optimizer=OptimizerConfig(lr=5e-3, schedule="warmup_cosine", warmup_steps=200,
                                                          clip_norm=1.0))

    def check(self, prefix: str) -> None:
        names = sorted(densities.TARGETS)
        if self.target == "file":
            if self.data_path is None:
                raise ConfigError(f"key '{prefix}data_path': value None is not valid: expected a .npy or .csv "
                                  "file of samples for target: file")
            if self.objective != "forward":
                raise ConfigError(f"key '{prefix}objective': value '{self.objective}' is not valid: expected "
                                  "forward for target: file (samples have no density to evaluate)")
            data_dim = load_samples(self.data_path, f"{prefix}data_path").shape[1]
            target_dim = data_dim
        elif self.target not in densities.TARGETS:
            raise ConfigError(f"key '{prefix}target': value '{self.target}' is not valid: expected one of "
                              f"{', '.join(names)}, or file")
        else:
            t = densities.TARGETS[self.target]
            target_dim = t.dim
            if self.objective in ("forward", "both") and t.sample is None:
                raise ConfigError(f"key '{prefix}objective': value '{self.objective}' is not valid: target "
                                  f"'{self.target}' is an energy without samples; expected reverse")
            if self.objective in ("reverse", "both") and t.log_prob is None:
                raise ConfigError(f"key '{prefix}objective': value '{self.objective}' is not valid: target "
                                  f"'{self.target}' has no density to evaluate; expected forward")
        if self.dim is not None and self.dim != target_dim:
            raise ConfigError(f"key '{prefix}dim': value {self.dim} is not valid: expected {target_dim}, the "
                              f"dimension of the data of target '{self.target}'")
        if self.tempering.steps > 0 and self.objective == "forward":
            raise ConfigError(f"key '{prefix}tempering.steps': value {self.tempering.steps} is not valid for objective "
                              "'forward': expected 0 (tempering acts on the reverse KL's target)")
        if self.tempering.steps > self.train.steps:
            raise ConfigError(f"key '{prefix}tempering.steps': value {self.tempering.steps} is not valid: expected "
                              f"at most train.steps = {self.train.steps} (beta must reach 1 before training ends)")
        if self.flow.kind == "planar" and self.objective != "reverse":
            raise ConfigError(f"key '{prefix}flow.kind': value 'planar' is not valid for objective "
                              f"'{self.objective}': expected affine or spline (a planar flow has no closed-form "
                              "inverse for the likelihood)")


def load_samples(path: str, key: str = "data_path") -> np.ndarray:
    """Samples ``(n, d)`` from a ``.npy`` or ``.csv`` file; anything else is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"key '{key}': value '{path}' is not valid: expected an existing .npy or .csv file")
    try:
        x = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, delimiter=",", ndmin=2)
    except (ValueError, OSError) as e:
        raise ConfigError(f"key '{key}': value '{path}' is not valid: cannot read it ({e})") from None
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 10 or not np.all(np.isfinite(x)):
        raise ConfigError(f"key '{key}': value '{path}' is not valid: expected a finite (n, d) array with "
                          f"n >= 10 (got shape {x.shape})")
    return x


# ------------------------------------------------------------------------------------------------ helpers


def _file_target(x: np.ndarray) -> tuple[densities.Target, np.ndarray]:
    """A data target drawing (with replacement) from the first 90% of ``x``; the last 10% is the test set."""
    n_train = int(0.9 * len(x))
    train, test = jnp.asarray(x[:n_train]), x[n_train:]
    lo, hi = x.min(0), x.max(0)
    pad = 0.1 * (hi - lo + 1e-9)
    box = tuple((float(a - b), float(c + b)) for a, b, c in zip(lo, pad, hi, strict=True))

    def sample(key, n):
        return train[jax.random.randint(key, (n,), 0, n_train)]

    return densities.Target("file", "data", x.shape[1], None, None, box, sample), test


def make_flow(cfg: Config, dim: int, loc=None, scale=None) -> flows.Bijection:
    """The flow ``cfg.flow`` describes on ``R^dim`` (:func:`vlab.flows.build`); with ``flow.standardize`` its last
    layer starts at location ``loc`` and scale ``scale``. The flow benchmark builds vlab's flow through here."""
    f = cfg.flow
    return flows.build(f.kind, dim, f.layers, hidden=f.hidden, depth=f.depth, bins=f.bins, bound=f.bound,
                       activation=f.activation, scale_fn=f.affine_scale, mixing=f.mixing, bias_init=f.bias_init,
                       invert_couplings=f.direction == "data_to_base",
                       loc=loc if f.standardize else None, scale=scale if f.standardize else None)


def normalised_log_prob(target: densities.Target):
    """``log P_X(x) = log p~(x) - log Z``: an energy's ``log p~`` less its exact (or grid) ``log Z``
    (:func:`vlab.densities.target_log_z`, computed once here); a data set's density is already normalised."""
    log_z = densities.target_log_z(target) if target.kind == "energy" else 0.0
    return lambda x: target.log_prob(x) - log_z


def with_member(title: str, cfg: Config, run) -> str:
    """``title`` with a second line naming the member a one-member figure shows (:func:`vlab.plots.member_title`),
    when the run has several."""
    note = plots.member_title(Members.of(cfg, run))
    return f"{title}\n{note}" if note else title


def _median(v) -> float:
    return float(np.median(np.asarray(v)))


def _per_seed(fn, params):
    return jax.jit(jax.vmap(fn))(params)


# ------------------------------------------------------------------------------------------------ experiment


class Experiment(_Experiment):
    name = "flow_kl"
    description = "normalizing flows by forward and reverse KL, and the KL equivalence (seed 002 q3)"
    Config = Config
    headline = ("forward.test_nll", "forward.kl", "reverse.kl", "reverse.ess_fraction", "equivalence.gap_in_se")
    member_keys = ("seed", "train.optimizer.lr")

    def run(self, cfg: Config, run: Any) -> dict:
        test = None
        if cfg.target == "file":
            target, test = _file_target(load_samples(cfg.data_path))  # type: ignore[arg-type]
        else:
            target = densities.get(cfg.target)
        k_fwd, k_rev, k_plot = jax.random.split(jax.random.key(cfg.seed), 3)
        members = Members.of(cfg, run)
        metrics: dict[str, Any] = {"target": target.name, "dim": target.dim}
        fits: dict[str, tuple] = {}
        if cfg.objective in ("forward", "both"):
            m, fits["forward"] = self.forward(cfg, target, test, k_fwd, run)
            metrics["forward"] = m
            if "equivalence" in m:
                metrics["equivalence"] = m.pop("equivalence")
        if cfg.objective in ("reverse", "both"):
            metrics["reverse"], fits["reverse"] = self.reverse(cfg, target, k_rev, run)
        if members.swept:
            per = {}
            if "forward" in metrics:
                per["forward.test_nll"] = metrics["forward"]["test_nll_seeds"]
                if "equivalence" in metrics:
                    per["forward.kl"] = metrics["equivalence"]["kl_data_space"]
            if "reverse" in metrics:
                per["reverse.kl"] = metrics["reverse"]["kl_seeds"]
                per["reverse.ess_fraction"] = metrics["reverse"]["ess_fraction_seeds"]
            metrics["members"] = members.rows(per)
        with run.timed("plots"):
            self.figures(cfg, target, fits, k_plot, run)
        return metrics

    # -------------------------------------------------------------------------------------------- forward
    def forward(self, cfg: Config, target: densities.Target, test, key, run) -> tuple[dict, tuple]:
        """Maximum likelihood on fresh batches; test NLL, its KL to the target, both sides of question 3.1."""
        k_ref, _, _, k_test, k_test2, k_q = jax.random.split(key, 6)
        # per-member keys: those of each sweep point's own run (stream 0 of the run key, then 1 / 2 of six)
        stream = lambda i: lambda seed: jax.random.split(jax.random.split(jax.random.key(seed), 3)[0], 6)[i]  # noqa: E731
        members = Members.of(cfg, run)
        n = len(members)
        ref = target.sample(k_ref, 10_000)
        flow = make_flow(cfg, target.dim, ref.mean(0), ref.std(0) + 1e-6)
        params0 = jax.vmap(flow.init)(members.keys(stream(1)))
        batch_fn = lambda data, k: target.sample(k, cfg.batch_size)
        opt = build_optimizer(cfg.train.optimizer, cfg.train.steps)
        res = fit(fo.forward_kl_loss(flow), params0, opt, members.keys(stream(2)), steps=cfg.train.steps,
                  chunk_size=cfg.train.chunk_size, log_every=cfg.train.log_every, batch_fn=batch_fn,
                  n_members=n, lr_scale=members.lr_scale(), run=run, name="forward",
                  checkpoint_every=cfg.train.checkpoint_every)
        x = jnp.asarray(test) if test is not None else target.sample(k_test, cfg.n_eval)
        log_q = _per_seed(lambda p: fo.flow_log_prob(flow, p, x), res.params)  # (seeds, n)
        log_q = np.asarray(log_q)
        nll = -log_q.mean(1)
        nll_se = log_q.std(1, ddof=1) / math.sqrt(x.shape[0])
        m: dict[str, Any] = {
            "test_nll": _median(nll), "test_nll_seeds": nll, "test_nll_se": nll_se,
            "n_test": int(x.shape[0]), "steps_per_s": cfg.train.steps / res.train_s, "compile_s": res.compile_s,
        }
        if target.log_prob is not None:
            # an energy's log p~ is normalised by its exact (or grid) log Z, so the KL is absolute
            log_px = normalised_log_prob(target)
            lp = jax.jit(jax.vmap(log_px))(x)
            m["entropy"], m["entropy_se"] = float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(x.shape[0]))
            self.floor = {**getattr(self, "floor", {}), "forward": (m["entropy"], "data entropy (KL = 0)")}
            x2 = target.sample(k_test2, cfg.n_eval)
            kx = np.asarray(_per_seed(lambda p: jnp.stack(fo.kl_data_space(flow, p, x, log_px)), res.params))
            ku = np.asarray(_per_seed(lambda p: jnp.stack(fo.kl_base_space(flow, p, x2, log_px)), res.params))
            gap = np.abs(kx[:, 0] - ku[:, 0]) / np.hypot(kx[:, 1], ku[:, 1])
            m["kl"], m["kl_se"] = _median(kx[:, 0]), float(kx[np.argsort(kx[:, 0])[len(kx) // 2], 1])
            m["equivalence"] = {
                "kl_data_space": kx[:, 0], "kl_data_space_se": kx[:, 1],
                "kl_base_space": ku[:, 0], "kl_base_space_se": ku[:, 1], "gap_in_se": float(gap.max()),
            }
            for i in range(n):
                tol = 3 * float(np.hypot(kx[i, 1], ku[i, 1]))
                run.check(f"KL[P_X||P_F(U)] = KL[P_F^-1(X)||P_U] ({members.label(i)})", float(kx[i, 0]),
                          float(ku[i, 0]), tol)
        u = jax.jit(jax.vmap(flow.inverse, in_axes=(None, 0)))(jax.tree.map(lambda a: a[0], res.params), x)[0]
        m["pullback_mean"], m["pullback_cov"] = np.asarray(u.mean(0)), np.atleast_2d(np.cov(np.asarray(u).T))
        if target.modes is not None:
            m["mode_coverage"] = self.coverage(cfg, target, flow, res.params, k_q)
        run.log(f"[flow_kl] forward: test NLL {m['test_nll']:.4f}" +
                (f", KL {m['kl']:.4f} (entropy {m['entropy']:.4f})" if "kl" in m else ""))
        return m, (flow, res)

    # -------------------------------------------------------------------------------------------- reverse
    def reverse(self, cfg: Config, target: densities.Target, key, run) -> tuple[dict, tuple]:
        """Variational fit to ``p~``; reverse KL with exact log Z, ELBO and importance-weighted log Z, ESS."""
        _, _, k_eval, k_q = jax.random.split(key, 4)
        stream = lambda i: lambda seed: jax.random.split(jax.random.split(jax.random.key(seed), 3)[1], 4)[i]  # noqa: E731
        members = Members.of(cfg, run)
        n = len(members)
        with run.timed("log_z"):
            log_z = densities.target_log_z(target)
        (lo, hi) = np.array(target.box).T
        flow = make_flow(cfg, target.dim, (lo + hi) / 2, (hi - lo) / 6)
        params0 = jax.vmap(flow.init)(members.keys(stream(0)))
        opt = build_optimizer(cfg.train.optimizer, cfg.train.steps)
        tempered = cfg.tempering.steps > 0 and cfg.tempering.beta0 < 1
        if tempered:
            loss = fo.tempered_reverse_kl_loss(flow, target.log_prob, cfg.batch_size, target.dim,
                                               cfg.tempering.beta0, cfg.tempering.steps, cfg.stick_the_landing)
        else:
            loss = fo.reverse_kl_loss(flow, target.log_prob, cfg.batch_size, target.dim, cfg.stick_the_landing)
        res = fit(loss, params0, opt, members.keys(stream(1)),
                  steps=cfg.train.steps, chunk_size=cfg.train.chunk_size, log_every=cfg.train.log_every,
                  n_members=n, lr_scale=members.lr_scale(), run=run, name="reverse",
                  checkpoint_every=cfg.train.checkpoint_every, with_step=tempered)
        self.floor = {**getattr(self, "floor", {}), "reverse": (-log_z, "-log Z (KL = 0)")}
        keys = jax.random.split(k_eval, n)
        est = jax.jit(jax.vmap(lambda p, k: fo.log_z_estimates(
            fo.log_weights(flow, p, k, target.log_prob, cfg.n_eval, target.dim)[1])))(res.params, keys)
        est = {k: np.asarray(v) for k, v in est.items()}
        kl = log_z - est["elbo"]
        mid = int(np.argsort(kl)[len(kl) // 2])
        m: dict[str, Any] = {
            "kl": float(kl[mid]), "kl_se": float(est["elbo_se"][mid]), "kl_seeds": kl,
            "log_z": log_z, "log_z_exact": target.log_z is not None,
            "elbo": float(est["elbo"][mid]), "elbo_se": float(est["elbo_se"][mid]),
            "iw_log_z": float(est["iw"][mid]), "iw_log_z_se": float(est["iw_se"][mid]),
            "ess": float(est["ess"][mid]), "ess_fraction": float(est["ess_fraction"][mid]),
            "ess_fraction_seeds": est["ess_fraction"],
            "steps_per_s": cfg.train.steps / res.train_s, "compile_s": res.compile_s,
        }
        if tempered:
            m["tempering"] = {"beta0": cfg.tempering.beta0, "steps": cfg.tempering.steps}
        covered = np.ones(n, bool)
        if target.modes is not None:
            m["mode_coverage"] = self.coverage(cfg, target, flow, res.params, k_q)
            covered = np.asarray(m["mode_coverage"]["fraction_seeds"]) == 1.0
        for i in range(n):
            # importance weights only see the modes q reaches: the check holds where q covers them all
            if covered[i]:
                run.check(f"importance-weighted log Z = log Z ({members.label(i)})", float(est["iw"][i]), log_z,
                          4 * float(est["iw_se"][i]) + 0.02)
            else:
                share = m["mode_coverage"]["fraction_seeds"][i]
                run.log(f"[flow_kl] reverse {members.label(i)} covers {share:.0%} of the modes: its "
                        "importance-weighted log Z misses the rest of the mass")
        run.log(f"[flow_kl] reverse: KL {m['kl']:.4f} +- {m['kl_se']:.4f}, log Z {log_z:.4f}, "
                f"IW {m['iw_log_z']:.4f}, ESS {100 * m['ess_fraction']:.1f}%")
        return m, (flow, res)

    def coverage(self, cfg, target, flow, params, key) -> dict:
        """Mode coverage of each seed's flow samples (nearest-centre assignment, :func:`fo.mode_coverage`)."""
        keys = jax.random.split(key, jax.tree.leaves(params)[0].shape[0])
        xs = jax.jit(jax.vmap(lambda p, k: flows.sample_and_log_prob(flow, p, k, cfg.n_eval, target.dim)[0]))(
            params, keys)
        per = [fo.mode_coverage(x, target.modes, target.mode_weights, cfg.coverage_share) for x in xs]
        return {"fraction": _median([c["fraction"] for c in per]), "fraction_seeds": [c["fraction"] for c in per],
                "shares_seed0": per[0]["shares"], "target_shares": np.asarray(target.mode_weights)}

    # -------------------------------------------------------------------------------------------- figures
    def figures(self, cfg: Config, target, fits: dict, key, run) -> None:
        first = lambda res: jax.tree.map(lambda a: a[0], res.params)
        members = Members.of(cfg, run)
        if target.dim == 2:
            self.density_figure(cfg, target, fits, key, first, run)
        else:
            self.density_1d(cfg, target, fits, first, run)
        if "forward" in fits:
            self.pullback_figure(cfg, target, fits["forward"], key, first, run)
        fig, axes = plots.figure(1, len(fits), squeeze=False)
        for ax, (name, (_, res)) in zip(axes[0], fits.items(), strict=True):
            h = res.history
            # reverse: -ELBO of the untempered target (the training loss itself unless tempering is on)
            curve = -h["elbo"] if name == "reverse" and "elbo" in h else h["loss"]
            loss = curve.reshape(len(h["step"]), -1)
            for s in range(loss.shape[1]):
                ax.plot(h["step"], loss[:, s], color=plots.color(s), lw=1, label=members.label(s) if s < 4 else None)
            if name in getattr(self, "floor", {}):
                level, label = self.floor[name]
                ax.axhline(level, color="k", ls="--", lw=1, label=label)
            # the first tenth of training (the flow far from the target) would set the scale: leave it out
            late = loss[np.asarray(h["step"]) >= 0.1 * h["step"][-1]]
            floor_level = self.floor[name][0] if name in getattr(self, "floor", {}) else np.nanmin(late)
            lo, hi = min(float(np.nanmin(late)), floor_level), float(np.nanmax(late))
            if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
                ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.15 * (hi - lo))
            if name == "reverse" and "beta" in h:
                ax.axvline(cfg.tempering.steps, color="0.5", ls=":", lw=1,
                           label=f"tempering ends (beta {cfg.tempering.beta0:g} -> 1)")
            ax.set_xlabel("step")
            ax.set_ylabel("NLL (nats)" if name == "forward" else "KL - log Z = -ELBO (nats)")
            ax.set_title(f"{name} KL training, {target.name}")
            ax.legend()
        run.save_figure(fig, "training")

    def density_figure(self, cfg, target, fits, key, first, run):
        """Heat-maps of the normalised target density and of each fit's ``q(x)`` on one colour scale (one
        colourbar), each with 400 samples; the first member's fits. Returns the figure (saved and closed)."""
        n = cfg.grid
        box = target.box
        extent = (box[0][0], box[0][1], box[1][0], box[1][1])
        pts, _ = densities.grid(box, n)
        panels = []
        if target.log_prob is not None:
            lp = jax.jit(jax.vmap(normalised_log_prob(target)))(pts)
            panels.append(("target density", np.exp(np.asarray(lp)), target.sample(key, 1000)
                           if target.sample is not None else None))
        elif target.sample is not None:
            panels.append(("target samples", None, target.sample(key, 3000)))
        for name, (flow, res) in fits.items():
            p = first(res)
            lq = jax.jit(jax.vmap(flows.log_prob, in_axes=(None, None, 0)), static_argnums=0)(flow, p, pts)
            xs = jax.jit(flows.sample_and_log_prob, static_argnums=(0, 3, 4))(flow, p, key, 1000, 2)[0]
            label = "forward KL (mass covering)" if name == "forward" else "reverse KL (mode seeking)"
            panels.append((f"{label}", np.exp(np.asarray(lq)), xs))
        fig, axes = plots.figure(1, len(panels), size=(4.2 * len(panels) + 0.9, 4.4), squeeze=False,
                                 layout="constrained")
        vmax = max(float(np.percentile(d, 99.5)) for _, d, _ in panels if d is not None)
        for ax, (title, dens, xs) in zip(axes[0], panels, strict=True):
            if dens is not None:
                image = ax.imshow(dens.reshape(n, n), origin="lower", extent=extent, aspect="auto", vmin=0, vmax=vmax,
                          cmap="viridis")
            if xs is not None:
                xs = np.asarray(xs)
                keep = ((xs[:, 0] > box[0][0]) & (xs[:, 0] < box[0][1]) & (xs[:, 1] > box[1][0]) &
                        (xs[:, 1] < box[1][1]))
                ax.scatter(xs[keep, 0][:400], xs[keep, 1][:400], s=1.5, color="white" if dens is not None
                           else plots.color(0), alpha=0.6, lw=0)
            ax.set_title(title)
            ax.set_xlim(box[0])
            ax.set_ylim(box[1])
            ax.grid(False)
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
        # 99.5th percentile: a sharp peak would otherwise leave the rest of the maps dark; above it is clipped
        fig.colorbar(image, ax=axes[0].tolist(), label="density", extend="max", shrink=0.9)
        fig.suptitle(with_member(f"{target.name}: density heat-maps (same colour scale) with 400 samples", cfg, run))
        run.save_figure(fig, "density")
        return fig

    def density_1d(self, cfg, target, fits, first, run):
        """The normalised target density ``P_X = p~ / Z`` and each fit's ``q(x)`` on the target's interval; the
        first member's fits. Returns the figure (saved and closed)."""
        (lo, hi), = target.box
        x = jnp.linspace(lo, hi, 800)[:, None]
        fig, ax = plots.figure(1, 1, size=(6.0, 3.5))
        if target.log_prob is not None:
            lp = jax.jit(jax.vmap(normalised_log_prob(target)))(x)
            ax.fill_between(np.asarray(x[:, 0]), np.exp(np.asarray(lp)), color="0.85", label="target")
        for i, (name, (flow, res)) in enumerate(fits.items()):
            p = first(res)
            lq = jax.jit(jax.vmap(flows.log_prob, in_axes=(None, None, 0)), static_argnums=0)(flow, p, x)
            ax.plot(np.asarray(x[:, 0]), np.exp(np.asarray(lq)), color=plots.color(i + 1), label=f"{name} KL fit")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.set_title(with_member(f"{target.name}: target and flow densities", cfg, run))
        ax.legend()
        run.save_figure(fig, "density")
        return fig

    def pullback_figure(self, cfg, target, fit_, key, first, run):
        """Data ``x ~ P_X`` and its pull-back ``u = F^-1(x)`` by the first member's forward fit, against the base
        ``N(0, I)``. Returns the figure (saved and closed)."""
        flow, res = fit_
        p = first(res)
        x = target.sample(key, 2000)
        u = np.asarray(jax.jit(jax.vmap(flow.inverse, in_axes=(None, 0)))(p, x)[0])
        x = np.asarray(x)
        if target.dim == 1:
            fig, axes = plots.figure(1, 2, size=(9.0, 3.5))
            axes[0].hist(x[:, 0], bins=60, density=True, color=plots.color(0))
            grid = np.linspace(-4, 4, 200)
            axes[1].hist(u[:, 0], bins=60, density=True, color=plots.color(2), label="$F^{-1}(x)$")
            axes[1].plot(grid, np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), color="k", label="$N(0,1)$")
            axes[1].legend()
            for ax, name in zip(axes, ("x", "u"), strict=True):
                ax.set(xlabel=name, ylabel="density")
        else:
            fig, axes = plots.figure(1, 2, size=(9.0, 4.2))
            axes[0].scatter(x[:, 0], x[:, 1], s=2, c=plots.color(0), lw=0, alpha=0.6)
            axes[0].set_aspect("equal")
            axes[1].scatter(u[:, 0], u[:, 1], s=2, c=plots.color(2), lw=0, alpha=0.6)
            t = np.linspace(0, 2 * math.pi, 200)
            for r in (1, 2, 3):
                axes[1].plot(r * np.cos(t), r * np.sin(t), color="k", lw=0.7, alpha=0.6)
            axes[1].set_xlim(-4, 4)
            axes[1].set_ylim(-4, 4)
            axes[1].set_aspect("equal")
            for ax, name in zip(axes, ("x", "u"), strict=True):
                ax.set(xlabel=f"${name}_1$", ylabel=f"${name}_2$")
        axes[0].set_title(f"data x ~ {target.name}")
        axes[1].set_title("pulled back: u = F$^{-1}$(x) (circles: N(0, I) at 1, 2, 3 sd)"
                          if target.dim == 2 else "pulled back: u = F$^{-1}$(x)")
        note = plots.member_title(Members.of(cfg, run))
        if note:
            fig.suptitle(f"forward KL fit, {note}")
        run.save_figure(fig, "pullback")
        return fig
