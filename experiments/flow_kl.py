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

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab import flows
from vlab import keys as vkeys
from vlab.distributions import densities
from vlab.engine import FitResult
from vlab.errors import ConfigError
from vlab.harness import flow_figures
from vlab.harness.config import BaseConfig, OptimizerConfig, TrainConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.flow_config import FlowConfig, make_flow, standardized_init
from vlab.objectives import flow as fo

# ------------------------------------------------------------------------------------------------ config


def _load_samples(path: str, key: str = "data_path") -> np.ndarray:
    """:func:`densities.load_samples`, its ``ValueError`` turned into the one-line :class:`ConfigError` naming the
    config ``key`` that held ``path``."""
    try:
        return densities.load_samples(path)
    except ValueError as e:
        raise ConfigError(f"key '{key}': value '{path}' is not valid: {e}") from None


@dataclass
class TemperingConfig:
    """Reverse KL against ``p~^beta_t`` with ``beta_t`` rising linearly from ``beta0`` to 1 over ``steps`` steps."""

    beta0: float = spec(1.0, gt=0, le=1, help="starting inverse temperature (1: no tempering)")
    steps: int = spec(0, ge=0, help="steps over which beta rises to 1 (0: no tempering)")


@dataclass
class Config(BaseConfig):
    """A flow fit to one target by forward KL, reverse KL or both."""

    target: str = spec("two_moons", help="a name in vlab.distributions.densities.TARGETS, or 'file' with data_path")
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
            data_dim = _load_samples(self.data_path, f"{prefix}data_path").shape[1]
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


# ------------------------------------------------------------------------------------------------ experiment


def _median(v) -> float:
    return float(np.median(np.asarray(v)))


class Experiment(_Experiment):
    description = "normalizing flows by forward and reverse KL, and the KL equivalence (seed 002 q3)"
    source = "seed 002, question 3"
    Config = Config
    headline = ("forward.test_nll", "forward.kl", "reverse.kl", "reverse.ess_fraction", "equivalence.gap_in_se")
    member_keys = ("seed", "train.optimizer.lr")

    def setup(self, cfg: Config) -> None:
        """The target (a named one, or samples from a file with their held-out tenth), the phases, ``log Z``."""
        self.test = None
        if cfg.target == "file":
            self.target, self.test = densities.samples_target(_load_samples(cfg.data_path))
        else:
            self.target = densities.get(cfg.target)
        self.phases = [p for p in ("forward", "reverse") if cfg.objective in (p, "both")]
        self.tempered = cfg.tempering.steps > 0 and cfg.tempering.beta0 < 1
        self.flows: dict[str, flows.Bijection] = {}
        if "reverse" in self.phases:
            with self.out.timed("log_z"):
                self.log_z = densities.target_log_z(self.target)

    def hyperparameters(self, cfg: Config) -> dict[str, np.ndarray]:
        """The tempered target's ``beta0`` and annealing steps, per member (:func:`fo.tempered_beta`)."""
        if not self.tempered:
            return {}
        return {"beta0": self.members.values("tempering.beta0", np.float64),
                "anneal_steps": self.members.values("tempering.steps", np.int32)}

    def point_keys(self, name: str) -> jax.Array:
        """One key of stream ``name`` per member, shared by the seeds of a sweep point: the key ``name`` of that
        point's separate run (the data its members share)."""
        return jnp.stack([vkeys.stream(int(s), name) for s in self.members.values("seed")])

    def train(self, cfg: Config) -> dict[str, FitResult]:
        """Forward KL on fresh batches of the target, reverse KL on fresh flow samples; each flow's last layer
        starts at the data's mean and scale (forward, from 10k reference points) or the box's centre and sixth."""
        t, fits = self.target, {}
        if "forward" in self.phases:
            flow = self.flows["forward"] = make_flow(cfg.flow, t.dim, jnp.zeros(t.dim), jnp.ones(t.dim))
            refs = jax.vmap(lambda k: t.sample(k, 10_000))(self.point_keys("reference"))

            def init(key, ref):
                return standardized_init(flow, key, ref.mean(0), ref.std(0) + 1e-6)

            start = jax.jit(jax.vmap(init if cfg.flow.standardize else lambda k, _: flow.init(k)))
            fits["forward"] = self.fit("forward", fo.forward_kl_loss(flow), start(self.keys("init/forward"), refs),
                                       batch_fn=lambda data, k: t.sample(k, cfg.batch_size))
        if "reverse" in self.phases:
            lo, hi = np.array(t.box).T
            flow = self.flows["reverse"] = make_flow(cfg.flow, t.dim, (lo + hi) / 2, (hi - lo) / 6)
            objective = fo.tempered_reverse_kl_loss if self.tempered else fo.reverse_kl_loss
            loss = objective(flow, t.log_prob, cfg.batch_size, t.dim, cfg.stick_the_landing)
            fits["reverse"] = self.fit("reverse", loss, jax.jit(jax.vmap(flow.init))(self.keys("init/reverse")))
        return fits

    def evaluate_fits(self, cfg: Config, fits: dict[str, FitResult]) -> dict:
        """Every member of each phase, vmapped: :func:`fo.forward_estimates` on ``n_eval`` fresh test points (or
        the file's held-out tenth) with the pull-back's moments, :func:`fo.reverse_estimates` on ``n_eval`` flow
        samples, and the mode counts of ``n_eval`` flow samples."""
        t, evals = self.target, {}
        log_px = densities.normalised_log_prob(t) if t.log_prob is not None else None
        modes = t.modes
        for phase in self.phases:
            flow = self.flows[phase]

            def one(p, k_test, k_base, k_eval, k_modes, phase=phase, flow=flow):
                if phase == "forward":
                    x = jnp.asarray(self.test) if self.test is not None else t.sample(k_test, cfg.n_eval)
                    x_base = t.sample(k_base, cfg.n_eval) if log_px is not None else None
                    out = fo.forward_estimates(flow, p, x, x_base, log_px)
                    u = jax.vmap(flow.inverse, in_axes=(None, 0))(p, x)[0]
                    out.update(u_mean=u.mean(0), u_cov=jnp.atleast_2d(jnp.cov(u.T)))
                else:
                    out = fo.reverse_estimates(flow, p, k_eval, t.log_prob, cfg.n_eval, t.dim)
                if modes is not None:
                    out["counts"] = fo.mode_counts(flows.sample_and_log_prob(flow, p, k_modes, cfg.n_eval, t.dim)[0],
                                                   modes)
                return out

            keys = (self.point_keys("test"), self.point_keys("test/base"), self.keys(f"evaluate/{phase}"),
                    self.keys(f"modes/{phase}"))
            evals[phase] = jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(fits[phase].params, *keys))
        return evals

    def coverage(self, cfg: Config, counts: np.ndarray) -> dict:
        """Each member's mode coverage (:func:`fo.coverage_of_counts`) and the median covered fraction."""
        per = [fo.coverage_of_counts(c, self.target.mode_weights, cfg.coverage_share) for c in counts]
        return {"fraction": _median([c["fraction"] for c in per]), "fraction_seeds": [c["fraction"] for c in per],
                "shares_seed0": per[0]["shares"], "target_shares": np.asarray(self.target.mode_weights)}

    def summarise(self, cfg: Config, fits: dict[str, FitResult], evals: dict) -> dict:
        """Test NLL, absolute KL and both sides of question 3.1 (forward); reverse KL = log Z - ELBO with the
        importance-weighted log Z and ESS (reverse); the checks of each member."""
        metrics: dict[str, Any] = {"target": self.target.name, "dim": self.target.dim}
        per: dict[str, Any] = {}
        if "forward" in evals:
            e, res = evals["forward"], fits["forward"]
            m = metrics["forward"] = {
                "test_nll": _median(e["nll"]), "test_nll_seeds": e["nll"], "test_nll_se": e["nll_se"],
                "n_test": len(self.test) if self.test is not None else cfg.n_eval,
                "steps_per_s": cfg.train.steps / res.train_s, "compile_s": res.compile_s}
            per["forward.test_nll"] = e["nll"]
            if "kl_data" in e:
                kx, ku = e["kl_data"], e["kl_base"]
                m["entropy"], m["entropy_se"] = _median(e["entropy"]), _median(e["entropy_se"])
                m["kl"], m["kl_se"] = _median(kx), float(e["kl_data_se"][np.argsort(kx)[len(kx) // 2]])
                gap = np.abs(kx - ku) / np.hypot(e["kl_data_se"], e["kl_base_se"])
                metrics["equivalence"] = {"kl_data_space": kx, "kl_data_space_se": e["kl_data_se"],
                                          "kl_base_space": ku, "kl_base_space_se": e["kl_base_se"],
                                          "gap_in_se": float(gap.max())}
                per["forward.kl"] = kx
                for i in range(len(kx)):
                    self.check(f"KL[P_X||P_F(U)] = KL[P_F^-1(X)||P_U] ({self.members.label(i)})", float(kx[i]),
                               float(ku[i]), 3 * float(np.hypot(e["kl_data_se"][i], e["kl_base_se"][i])))
            m["pullback_mean"], m["pullback_cov"] = e["u_mean"][0], e["u_cov"][0]
            if "counts" in e:
                m["mode_coverage"] = self.coverage(cfg, e["counts"])
            self.log(f"[flow_kl] forward: test NLL {m['test_nll']:.4f}" +
                     (f", KL {m['kl']:.4f} (entropy {m['entropy']:.4f})" if "kl" in m else ""))
        if "reverse" in evals:
            e, res, log_z = evals["reverse"], fits["reverse"], self.log_z
            kl = log_z - e["elbo"]
            mid = int(np.argsort(kl)[len(kl) // 2])
            m = metrics["reverse"] = {
                "kl": float(kl[mid]), "kl_se": float(e["elbo_se"][mid]), "kl_seeds": kl,
                "log_z": log_z, "log_z_exact": self.target.log_z is not None,
                "elbo": float(e["elbo"][mid]), "elbo_se": float(e["elbo_se"][mid]),
                "iw_log_z": float(e["iw"][mid]), "iw_log_z_se": float(e["iw_se"][mid]),
                "ess": float(e["ess"][mid]), "ess_fraction": float(e["ess_fraction"][mid]),
                "ess_fraction_seeds": e["ess_fraction"],
                "steps_per_s": cfg.train.steps / res.train_s, "compile_s": res.compile_s}
            per.update({"reverse.kl": kl, "reverse.ess_fraction": e["ess_fraction"]})
            if self.tempered:
                m["tempering"] = {"beta0": cfg.tempering.beta0, "steps": cfg.tempering.steps}
            covered = np.ones(len(kl), bool)
            if "counts" in e:
                m["mode_coverage"] = self.coverage(cfg, e["counts"])
                covered = np.asarray(m["mode_coverage"]["fraction_seeds"]) == 1.0
            for i in range(len(kl)):
                # importance weights only see the modes q reaches: the check holds where q covers them all
                if covered[i]:
                    self.check(f"importance-weighted log Z = log Z ({self.members.label(i)})", float(e["iw"][i]),
                               log_z, 4 * float(e["iw_se"][i]) + 0.02)
                else:
                    self.log(f"[flow_kl] reverse {self.members.label(i)} covers "
                             f"{m['mode_coverage']['fraction_seeds'][i]:.0%} of the modes: its importance-weighted "
                             "log Z misses the rest of the mass")
            self.log(f"[flow_kl] reverse: KL {m['kl']:.4f} +- {m['kl_se']:.4f}, log Z {log_z:.4f}, "
                     f"IW {m['iw_log_z']:.4f}, ESS {100 * m['ess_fraction']:.1f}%")
        metrics["members"] = self.member_rows(per)
        return metrics

    def figures(self, cfg: Config, fits: dict[str, FitResult], evals: dict, metrics: dict) -> None:
        """The first member's densities (heat-maps in 2-D) and pull-back, and every member's training curves."""
        t, key, note = self.target, self.key("figures"), self.member_title(0)
        first = {name: (self.flows[name], jax.tree.map(lambda a: a[0], res.params)) for name, res in fits.items()}
        if t.dim == 2:
            self.save_figure(flow_figures.density_maps(t, first, key, cfg.grid, note), "density")
        else:
            self.save_figure(flow_figures.density_1d(t, first, note), "density")
        if "forward" in first:
            self.save_figure(flow_figures.pullback(t, first["forward"], key, note), "pullback")
        floors = {}
        if "entropy" in metrics.get("forward", {}):
            floors["forward"] = (metrics["forward"]["entropy"], "data entropy (KL = 0)")
        if "reverse" in metrics:
            floors["reverse"] = (-metrics["reverse"]["log_z"], "-log Z (KL = 0)")
        tempering = (cfg.tempering.beta0, cfg.tempering.steps) if self.tempered else None
        self.save_figure(flow_figures.training_curves({k: r.history for k, r in fits.items()},
                                                      [self.members.label(i) for i in range(len(self.members))],
                                                      t.name, floors, tempering), "training")
