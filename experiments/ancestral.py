"""Ancestral sampling of a small directed graphical model against exact enumeration (seed 003, question 1).

The student network (difficulty D, intelligence F, grade G | D, F, SAT S | F, letter L | G) is sampled parents
first; Monte Carlo frequencies of every marginal, of the seed's P(L = l, S = s) and of conditionals estimated by
rejection are compared with exact sums over the joint table, within their standard errors. Exact P(L = l1) = 0.502,
P(F = f1 | G = g3) = 0.079 and P(D = d1 | G = g3) = 0.629 are the values printed in Koller & Friedman.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure
from vlab.models import bayes_net as bn

# name -> (query, evidence), variables by index in the order D, F, G, S, L (values 0-indexed).
QUERIES = {
    "P(L=l1, S=s1)": ({4: 1, 3: 1}, {}),
    "P(L=l1)": ({4: 1}, {}),
    "P(F=f1 | G=g3)": ({1: 1}, {2: 2}),
    "P(D=d1 | G=g3)": ({0: 1}, {2: 2}),
    "P(F=f1 | G=g3, S=s1)": ({1: 1}, {2: 2, 3: 1}),
}
PRINTED = {"P(L=l1)": 0.502, "P(F=f1 | G=g3)": 0.079, "P(D=d1 | G=g3)": 0.629}  # Koller & Friedman, 3 decimals
POSITIONS = {"D": (0.25, 0.85), "F": (0.75, 0.85), "G": (0.4, 0.5), "S": (0.9, 0.5), "L": (0.4, 0.15)}
LONG = {"D": "difficulty", "F": "intelligence", "G": "grade", "S": "SAT", "L": "letter"}


@dataclass
class Config(BaseConfig):
    n_samples: int = spec(200_000, ge=100, help="ancestral samples")
    z_tolerance: float = spec(4.0, gt=0, help="allowed |MC - exact| in standard errors")


def estimates(key: jax.Array, net: bn.BayesNet, n: int) -> dict:
    """Exact and Monte Carlo marginals of every variable and the QUERIES from ``n`` ancestral samples.

    A conditional P(q | e) is estimated by rejection: the fraction of the samples agreeing with e that also agree
    with q. ``running`` is the running mean of the indicator of the seed's event (L = l1, S = s1)."""
    joint = bn.joint_table(net)
    x = bn.ancestral_sample(key, net, n)
    out = {"joint_sum": jnp.sum(joint)}
    for i, name in enumerate(net.names):
        out[f"marginal/{name}/exact"] = bn.marginal(joint, (i,))
        out[f"marginal/{name}/mc"] = jnp.bincount(x[:, i], length=net.cards[i]) / n
    for name, (query, evidence) in QUERIES.items():
        ev = bn.matches(x, evidence)
        hit = bn.matches(x, {**evidence, **query}) & ev
        out[f"query/{name}/exact"] = bn.conditional(joint, query, evidence)
        out[f"query/{name}/mc"] = jnp.sum(hit) / jnp.sum(ev)
        out[f"query/{name}/kept"] = jnp.sum(ev)
    hit = bn.matches(x, QUERIES["P(L=l1, S=s1)"][0])
    out["running"] = jnp.cumsum(hit) / jnp.arange(1, n + 1)
    return out


class Experiment(_Experiment):
    description = "ancestral sampling of the student network: Monte Carlo marginals and conditionals vs enumeration"
    source = "seed 003, question 1"
    Config = Config
    headline = ("queries.P(L=l1, S=s1).exact", "queries.P(L=l1, S=s1).monte_carlo", "max_abs_z")

    def setup(self, cfg: Config) -> None:
        self.net = bn.student_network()
        bn.validate(self.net)

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: the samples are drawn in :meth:`summarise`."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Monte Carlo against exact, each within ``z_tolerance`` standard errors sqrt(p (1 - p) / n_used)."""
        n, tol = cfg.n_samples, cfg.z_tolerance
        res = jax.device_get(jax.jit(lambda key: estimates(key, self.net, n))(self.key("ancestral")))
        z_all, marginals, queries = [], {}, {}
        for name in self.net.names:
            exact, mc = res[f"marginal/{name}/exact"], res[f"marginal/{name}/mc"]
            se = np.sqrt(exact * (1 - exact) / n)
            z = float(np.max(np.abs(mc - exact) / se))
            z_all.append(z)
            marginals[name] = {"exact": exact, "monte_carlo": mc, "standard_error": se}
            self.check(f"P({name}): Monte Carlo within {tol:g} s.e. of exact (max |z|)", z, 0.0, tol)
        for name in QUERIES:
            exact, mc, kept = (float(res[f"query/{name}/{k}"]) for k in ("exact", "mc", "kept"))
            se = np.sqrt(exact * (1 - exact) / max(kept, 1))
            z = abs(mc - exact) / se
            z_all.append(z)
            queries[name] = {"exact": exact, "monte_carlo": mc, "standard_error": se, "samples_used": int(kept),
                             "printed": PRINTED.get(name)}
            self.check(f"{name}: Monte Carlo within {tol:g} s.e. (|z|)", z, 0.0, tol)
            if name in PRINTED:
                self.check(f"{name}: exact = the printed {PRINTED[name]}", exact, PRINTED[name], 5e-4)
        self.check("joint table sums to 1", float(res["joint_sum"]), 1.0, 1e-6)
        self.running = res["running"]
        return {"n_samples": n, "marginals": marginals, "queries": queries, "max_abs_z": float(max(z_all))}

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """(1) the network in sampling order, (2) every marginal, (3) the running estimate of P(L=l1, S=s1)."""
        self.save_figure(_figure(self.net, metrics["marginals"], self.running,
                                   metrics["queries"]["P(L=l1, S=s1)"]["exact"], cfg.n_samples), "ancestral")


def _figure(net: bn.BayesNet, marginals: dict, running: np.ndarray, exact: float, n: int) -> Any:
    """The three panels of :meth:`Experiment.figures`."""
    fig, axes = figure(1, 3, size=(14, 4.0), gridspec_kw={"width_ratios": [0.8, 1.4, 1.2]})
    ax = axes[0]
    for child, parents in zip(net.names, net.parents, strict=True):
        for p in parents:
            ax.annotate("", xy=POSITIONS[child], xytext=POSITIONS[net.names[p]],
                        arrowprops={"arrowstyle": "-|>", "color": "0.3", "shrinkA": 17, "shrinkB": 17, "lw": 1.3})
    for order, name in enumerate(net.names, 1):
        x, y = POSITIONS[name]
        ax.text(x, y, name, ha="center", va="center", fontsize=12, fontweight="bold",
                bbox={"boxstyle": "circle,pad=0.45", "fc": PALETTE[5], "ec": "k"})
        ax.text(x + 0.08, y, f"{order}. {LONG[name]}", ha="left", va="center", fontsize=7)
    ax.set_xlim(0, 1.25)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title("sampling order: parents first", fontsize=10)

    ax = axes[1]
    labels, ex, mc, se = [], [], [], []
    for name in net.names:
        m = marginals[name]
        for v in range(len(m["exact"])):
            labels.append(f"{name.lower()}{v}")
            ex.append(m["exact"][v])
            mc.append(m["monte_carlo"][v])
            se.append(m["standard_error"][v])
    idx = np.arange(len(labels))
    ax.bar(idx - 0.2, ex, 0.4, color=PALETTE[0], label="exact (enumeration)")
    ax.bar(idx + 0.2, mc, 0.4, yerr=2 * np.asarray(se), capsize=2, color=PALETTE[1],
           label=f"ancestral sampling, n = {n:,} (±2 s.e.)")
    ax.set_xticks(idx, labels, fontsize=8)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.08)
    ax.set_title("marginal of every variable")
    ax.legend(fontsize=8, loc="upper left", ncol=2)

    ax = axes[2]
    ns = np.unique(np.geomspace(10, n, 300).astype(int))
    band = 2 * np.sqrt(exact * (1 - exact) / ns)
    ax.fill_between(ns, exact - band, exact + band, color=PALETTE[0], alpha=0.2, label="exact ± 2 s.e.")
    ax.axhline(exact, color=PALETTE[0], lw=1.2, label=f"exact {exact:.4f}")
    ax.plot(ns, running[ns - 1], color=PALETTE[1], lw=1.2, label="running Monte Carlo estimate")
    ax.set_xscale("log")
    ax.set_ylim(max(0.0, exact - 0.25), min(1.0, exact + 0.25))
    ax.set_xlabel("samples")
    ax.set_title(r"the seed's $P(L = l_1, S = s_1) = \sum_{D,F,G} \ldots$")
    ax.legend(fontsize=8)
    return fig
