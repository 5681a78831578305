"""Linear SimSiam dynamics with and without the stop-gradient and the predictor (seed 002, question 5).

The gradient flow of the expected loss J(W, W_p) is integrated with RK4 inside ``lax.scan`` for the four variants
at once (vmap over the two switches). Without the stop-gradient, d vec(W)/dt = -H(t) vec(W) with
H >= lambda_min(X') I, so ||W(t)|| <= exp(-lambda_min(X') t) ||W(0)||: W collapses to 0. Without the predictor
W(t) = W(0) expm(-c X' t) (c = 1 with the stop-gradient, 2 without): collapse again. With both, W stays away from
0 and W_p settles where dW_p/dt = 0, i.e. W_p F1 = F12.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab.algorithms import simsiam as ss
from vlab.errors import ConfigError
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure
from vlab.keys import stream

CASES = (("stop-grad + predictor", True, True), ("stop-grad, no predictor", True, False),
         ("no stop-grad, predictor", False, True), ("no stop-grad, no predictor", False, False))
KEYS = ("sg_pred", "sg_nopred", "nosg_pred", "nosg_nopred")


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    x_eigenvalues: list[float] = spec([3.0, 2.0, 1.5, 1.0, 0.5, 0.25], gt=0, help="spectrum of X = E[x x^T]")
    noise: float = spec(0.3, gt=0, help="augmentation covariance X' = noise * I")
    m: int = spec(3, ge=1, help="output dimension (rows of W)")
    init_scale: float = spec(0.5, gt=0, help="W(0), W_p(0) entries ~ N(0, init_scale^2)")
    dt: float = spec(0.01, gt=0, le=0.1, help="RK4 step")
    t_max: float = spec(50.0, gt=0, help="integration time")
    save_every: int = spec(50, gt=0, help="RK4 steps between saved states")

    def check(self, prefix: str) -> None:
        if self.m > len(self.x_eigenvalues):
            raise ConfigError(
                f"key '{prefix}m': value {self.m} is not valid: expected at most d = {len(self.x_eigenvalues)} "
                "(the length of x_eigenvalues)"
            )
        if round(self.t_max / self.dt) < self.save_every:
            raise ConfigError(
                f"key '{prefix}save_every': value {self.save_every} is not valid: expected at most "
                f"t_max / dt = {round(self.t_max / self.dt)}"
            )


def random_state(key: jax.Array, m: int, d: int, scale: float = 1.0) -> ss.SimSiamState:
    """W (m, d) and W_p (m, m) with entries scale * N(0, 1), from key streams ``"w"`` and ``"wp"``."""
    return ss.SimSiamState(scale * jax.random.normal(stream(key, "w"), (m, d)),
                           scale * jax.random.normal(stream(key, "wp"), (m, m)))


def analyse(cfg: Config, s0: ss.SimSiamState, probe: ss.SimSiamState, x_cov: jax.Array,
            noise_cov: jax.Array) -> dict:
    """The four trajectories from ``s0`` and every closed-form comparison (jittable): the autodiff flow against
    the seed's at ``s0`` and ``probe``, d vec(W)/dt = -H vec(W), W(t) = W(0) expm(-c X' t) without the predictor,
    the spectrum of H(t) and the residual of W_p F1 = F12 at the end.

    Args:
        cfg: the experiment's config (time step, horizon, saving interval).
        s0: the initial (W, W_p).
        probe: a second state where the autodiff and closed-form velocities are compared.
        x_cov: the data covariance X.
        noise_cov: the augmentation noise covariance X'.

    Returns:
        A dict of the trajectories, their norms, the spectra and every comparison's error.
    """
    steps, save_every = int(round(cfg.t_max / cfg.dt)), cfg.save_every
    sg, pred = jnp.asarray([c[1] for c in CASES]), jnp.asarray([c[2] for c in CASES])
    traj = jax.vmap(lambda a, b: ss.integrate(s0, x_cov, noise_cov, a, b, cfg.dt, steps, save_every))(sg, pred)
    out = {"traj": traj, "norms": jnp.linalg.norm(traj.w, axis=(-2, -1))}
    out["h_eigs"] = jax.vmap(lambda wp: jnp.linalg.eigvalsh(ss.h_matrix(wp, x_cov, noise_cov)))(traj.wp[2])
    for key, (_, use_sg, use_pred) in zip(KEYS, CASES, strict=True):
        errs = []
        for st in (s0, probe):
            v = ss.velocity(st, x_cov, noise_cov, use_sg, use_pred)
            errs.append(jnp.max(jnp.abs(v.w - ss.seed_velocity_w(st.w, st.wp, x_cov, noise_cov, use_sg, use_pred))))
            if use_pred:
                errs.append(jnp.max(jnp.abs(v.wp - ss.seed_velocity_wp(st.w, st.wp, x_cov, noise_cov))))
        out[f"flow_err/{key}"] = jnp.max(jnp.stack(errs))
    v = ss.velocity(probe, x_cov, noise_cov, False, True)
    out["h_err"] = jnp.max(jnp.abs(ss.h_matrix(probe.wp, x_cov, noise_cov) @ ss.vec(probe.w) + ss.vec(v.w)))
    times = jnp.arange(traj.w.shape[1], dtype=x_cov.dtype) * save_every * cfg.dt
    for idx, c in ((1, 1.0), (3, 2.0)):
        ref = jax.vmap(lambda tt, c=c: s0.w @ jax.scipy.linalg.expm(-c * noise_cov * tt))(times)
        out[f"expm_norms/{KEYS[idx]}"] = jnp.linalg.norm(ref, axis=(-2, -1))
        out[f"expm_err/{KEYS[idx]}"] = jnp.max(jnp.abs(traj.w[idx, -1] - ref[-1])) / jnp.max(jnp.abs(s0.w))
    out["lam0"] = jnp.min(jnp.linalg.eigvalsh(noise_cov))
    wT, wpT = traj.w[0, -1], traj.wp[0, -1]
    f1, f12 = wT @ (x_cov + noise_cov) @ wT.T, wT @ x_cov @ wT.T
    out["fixed"] = jnp.max(jnp.abs(wpT @ f1 - f12)) / jnp.max(jnp.abs(f12))
    out["wp_singular_values"] = jnp.linalg.svd(wpT, compute_uv=False)
    return out


class Experiment(_Experiment):
    description = "linear SimSiam gradient flow: W collapses without the stop-gradient or the predictor, not with both"
    source = "seed 002, question 5"
    Config = Config
    headline = ("final_norm.sg_pred", "final_norm.nosg_pred", "final_norm.nosg_nopred", "final_norm.sg_nopred")

    def setup(self, cfg: Config) -> None:
        """X = Q diag(x_eigenvalues) Q^T with a random rotation Q, X' = noise I, W(0), W_p(0) and a probe state."""
        d, m = len(cfg.x_eigenvalues), cfg.m
        q, _ = jnp.linalg.qr(jax.random.normal(self.key("rotation"), (d, d)))
        self.x_cov = q @ jnp.diag(jnp.asarray(cfg.x_eigenvalues)) @ q.T
        self.noise_cov = cfg.noise * jnp.eye(d)
        self.s0 = random_state(self.key("init"), m, d, cfg.init_scale)
        self.probe = random_state(self.key("probe"), m, d)

    def train(self, cfg: Config) -> dict:
        """Nothing is trained by an optimiser: the gradient flow is integrated by RK4 in :meth:`summarise`."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """The flows' closed forms, the collapse bound without the stop-gradient and the fixed point with both."""
        res = jax.device_get(jax.jit(lambda *a: analyse(cfg, *a))(self.s0, self.probe, self.x_cov, self.noise_cov))
        t = np.arange(res["norms"].shape[1]) * cfg.save_every * cfg.dt
        norms, h_eigs = res["norms"], res["h_eigs"]
        tol = 1e-10 if self.x_cov.dtype == jnp.float64 else 1e-4
        flow_err = {key: float(res[f"flow_err/{key}"]) for key in KEYS}
        for key, (label, _, _) in zip(KEYS, CASES, strict=True):
            self.check(f"{label}: autodiff flow = seed closed form (max abs)", flow_err[key], 0.0, tol * 100)
        h_err = float(res["h_err"])
        self.check("d vec(W)/dt = -H vec(W) without stop-grad (max abs)", h_err, 0.0, tol * 100)
        expm_err = {}
        for idx, c in ((1, 1.0), (3, 2.0)):
            expm_err[KEYS[idx]] = float(res[f"expm_err/{KEYS[idx]}"])
            self.check(f"{CASES[idx][0]}: W(T) = W(0) expm(-{c:g} X' T) (relative)", expm_err[KEYS[idx]], 0.0,
                       100 * tol)
        lam0 = float(res["lam0"])
        bound = norms[2, 0] * np.exp(-lam0 * t)
        bound_violation = float(np.max(norms[2] - bound) / norms[2, 0])
        self.check("no stop-grad: ||W(t)|| <= exp(-lambda_min(X') t) ||W(0)|| (max excess)",
                   max(bound_violation, 0.0), 0.0, tol)
        min_h = float(np.min(h_eigs))
        self.check("no stop-grad: inf_t lambda_min(H(t)) >= lambda_min(X')", max(lam0 - min_h, 0.0), 0.0, tol)
        fixed = float(res["fixed"])
        self.check("stop-grad + predictor: W_p F1 = F12 at the end (max abs, relative to F12)", fixed, 0.0, 1e-3)
        ratio = norms[:, -1] / norms[:, 0]
        self.check("stop-grad + predictor: no collapse (||W(T)|| / ||W(0)|| > 0.1)", float(ratio[0] <= 0.1), 0.0,
                   0.0)
        self.curves = (t, norms, bound, h_eigs, lam0, {idx: res[f"expm_norms/{KEYS[idx]}"] for idx in (1, 3)})
        return {
            "final_norm": {k: float(norms[i, -1]) for i, k in enumerate(KEYS)},
            "initial_norm": float(norms[0, 0]),
            "collapsed": {k: bool(ratio[i] < 1e-3) for i, k in enumerate(KEYS)},
            "flow_vs_seed_max_abs": flow_err,
            "h_identity_max_abs": h_err,
            "expm_relative_error": expm_err,
            "lambda_min_noise": lam0,
            "inf_lambda_min_h": min_h,
            "bound_max_excess": bound_violation,
            "sg_pred_fixed_point_residual": fixed,
            "sg_pred_final_predictor_singular_values": res["wp_singular_values"],
        }

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """||W(t)|| of the four variants with the bound and the closed forms, and the spectrum of H(t)."""
        self.save_figure(_figure(*self.curves), "simsiam")


def _figure(t: np.ndarray, norms: np.ndarray, bound: np.ndarray, h_eigs: np.ndarray, lam0: float,
            closed_norms: dict[int, np.ndarray]) -> Any:
    """The panels of :meth:`Experiment.figures`."""
    fig, axes = figure(1, 2, size=(11, 4.0))
    ax = axes[0]
    for i, (label, _, _) in enumerate(CASES):
        ax.semilogy(t, np.maximum(norms[i], 1e-300), color=PALETTE[i], lw=2, label=label)
    ax.semilogy(t, bound, color="k", ls=":", lw=1.2, zorder=5,
                label=r"bound for no stop-grad: $e^{-\lambda_{min}(X')t}\,\|W(0)\|$")
    for idx, c in ((1, 1.0), (3, 2.0)):
        ax.semilogy(t[::4], closed_norms[idx][::4], "o", ms=3, mfc="none", color=PALETTE[idx],
                    label=rf"$W(0)\,e^{{-{c:g}X't}}$ (closed form)")
    ax.set_ylim(norms[:, -1].min() / 10, norms.max() * 3)
    ax.set_xlabel("t")
    ax.set_ylabel(r"$\|W(t)\|_F$")
    ax.set_title("encoder norm under the gradient flow")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[1]
    ax.plot(t, h_eigs, color=PALETTE[0], lw=0.8)
    ax.axhline(lam0, color="k", ls="--", lw=1, label=r"$\lambda_{min}(X')$")
    ax.plot([], [], color=PALETTE[0], lw=0.8, label="eigenvalues of H(t)")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_title("no stop-grad, with predictor: spectrum of H(t)")
    ax.legend(fontsize=8)
    return fig
