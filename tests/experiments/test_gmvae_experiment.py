"""The GM-VAE experiment end to end: clustering the pinwheel, seeds as one program, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import config

from vlab.cli.main import main
from vlab.harness import metrics, plots

CFG = config("gmvae")
FAST = ["train.steps=2000", "train.chunk_size=1000", "warmup_steps=500", "data.n_train=2000", "data.n_test=400",
        "seed=1", "n_seeds=1", "restarts=1", "pretrain.steps=300", "mixture.qz_fit_steps=100"]
RANDOM_INIT = ["pretrain.kind=none", "mixture.init=random"]


def _run(tmp_path, *args) -> tuple[int, dict]:
    out = tmp_path / "run"
    code = main(["run", CFG, *args, "--out", str(out), "--quiet"])
    f = out / "metrics.json"
    return code, (json.loads(f.read_text()) if f.exists() else {})


class _Spy:
    """Records the (labels, clusters) of every clustering-accuracy call and the titles and axis labels of every saved
    figure, passing both through."""

    def __init__(self, monkeypatch):
        self.scored: list[tuple[np.ndarray, np.ndarray]] = []
        self.figures: dict[str, dict] = {}
        accuracy, save = metrics.clustering_accuracy, plots.save

        def scored(labels, clusters):
            self.scored.append((np.asarray(labels).copy(), np.asarray(clusters).copy()))
            return accuracy(labels, clusters)

        def saved(fig, path, *args, **kwargs):
            self.figures[Path(path).name] = {
                "suptitle": fig._suptitle.get_text() if fig._suptitle is not None else "",
                "axes": [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_label() !=
                         "<colorbar>"]}
            return save(fig, path, *args, **kwargs)

        monkeypatch.setattr(metrics, "clustering_accuracy", scored)
        monkeypatch.setattr(plots, "save", saved)

    def nmis(self, i: int) -> dict[str, float]:
        """Both normalisations of the NMI of the i-th scored clustering."""
        return {"nmi": metrics.nmi(*self.scored[i], average="geometric"),
                "nmi_arithmetic": metrics.nmi(*self.scored[i], average="arithmetic")}


def test_gmvae_clusters_the_pinwheel(tmp_path, monkeypatch):
    # the config's procedure on one seed: a single restart of this seed reaches 0.995, and so does the one of highest
    # training ELBO among three
    spy = _Spy(monkeypatch)
    code, m = _run(tmp_path, *FAST, "restarts=3")
    assert code == 0 and all(c["ok"] for c in m["checks"])
    assert m["test"]["accuracy"] >= 0.9 and m["test"]["nmi"] >= 0.8
    # the latent is w itself (z_dim = 2) and the samples are in data space; one seed: no member in the titles
    latent, samples = spy.figures["latent_confusion_curves"], spy.figures["component_samples"]
    assert latent["axes"][0][1:] == ("$w_1$", "$w_2$") and latent["suptitle"] == ""
    assert samples["axes"][0][1:] == ("$x_1$", "$x_2$") and "\n" not in samples["axes"][0][0]
    assert len(m["component_usage"]) == 5 and abs(sum(m["component_usage"]) - 1) < 1e-9
    assert {"latent_confusion_curves.png", "component_samples.png"} <= {p.name for p in (tmp_path / "run").iterdir()}


def test_gmvae_seeds_exact_qz_and_collapse_warning(tmp_path, capsys):
    # two seeds in one program; 12 components for 5 arms leave some (nearly) empty, and the log says so
    code, m = _run(tmp_path, *FAST, *RANDOM_INIT, "n_seeds=2", "mixture.qz=exact", "mixture.learn_pi=true",
                   "mixture.k=12", "train.steps=300")
    assert code == 0
    acc = m["test"]["accuracy"]
    assert set(acc) >= {"mean", "std", "values"} and len(acc["values"]) == 2
    assert len(m["prior"]["pi"]) == 2 and abs(sum(m["prior"]["pi"][0]) - 1) < 1e-5
    assert "collapsed" in capsys.readouterr().err


def test_pretrained_kmeans_initialisation_and_restarts(tmp_path):
    # VaDE-style: autoencoder pretraining, k-means on the encoded means, the q(z|w,x) network fitted to p(z|w),
    # then the ELBO; two seeds of two restarts each in one program, the restart of higher training ELBO kept
    code, m = _run(tmp_path, "train.steps=300", "train.chunk_size=300", "warmup_steps=100", "data.n_train=1000",
                   "data.n_test=400", "n_seeds=2", "restarts=2", "pretrain.kind=autoencoder", "pretrain.steps=200",
                   "mixture.init=kmeans", "mixture.learn_pi=true", "mixture.qz_fit_steps=50")
    assert code == 0 and all(c["ok"] for c in m["checks"])
    init = m["kmeans_init"]
    assert len(init["accuracy"]["values"]) == 2 and len(m["kmeans_inertia"]["values"]) == 2
    assert min(init["accuracy"]["values"]) > 0.5  # k-means on a 2-D latent of the pinwheel already finds arms
    assert all(abs(sum(p) - 1) < 1e-5 for p in m["prior"]["pi"])
    restart = m["restart_train_elbo"]
    assert len(restart) == 2 and len(restart[0]) == 2
    assert sorted(m["train"]["elbo"]["values"]) == pytest.approx(sorted(max(r) for r in restart), abs=1e-6)


def test_gmvae_clusters_a_2d_gaussian_mixture(tmp_path):
    # eight Gaussians on a circle, K = 8: k-means on the autoencoder's means finds all eight; the GM-VAE must keep
    # them. With the encoder's untrained variance (widths near 1 against clusters of sigma 0.05) training merged
    # pairs of clusters into one component (accuracy 0.70, two components empty)
    code, m = _run(tmp_path, "data.name=gaussians", "mixture.k=8", "n_seeds=2", "restarts=1", "train.steps=2000",
                   "pretrain.steps=500")
    assert code == 0 and all(c["ok"] for c in m["checks"])
    assert m["kmeans_init"]["accuracy"]["mean"] == 1.0
    assert m["test"]["accuracy"]["min"] >= 0.99 and m["test"]["nmi"]["min"] >= 0.98


def test_diagonal_components_from_kmeans(tmp_path):
    # VaDE's diagonal covariances: k-means starts every sigma_kj at the cluster's spread along dimension j
    code, m = _run(tmp_path, "train.steps=200", "train.chunk_size=200", "warmup_steps=50", "data.n_train=1000",
                   "data.n_test=400", "pretrain.kind=autoencoder", "pretrain.steps=200", "mixture.init=kmeans",
                   "mixture.covariance=diagonal", "model.z_dim=3", "n_seeds=1", "restarts=1")
    assert code == 0 and all(c["ok"] for c in m["checks"])
    sigma = np.asarray(m["prior"]["sigma"])
    assert sigma.shape == (5, 3) and np.all(sigma > 0)
    assert len({round(float(s), 6) for s in sigma.ravel()}) > 5  # not one shared value
    assert {"latent_confusion_curves.png", "component_samples.png"} <= {p.name for p in (tmp_path / "run").iterdir()}


def test_full_components_from_kmeans_and_em(tmp_path, monkeypatch):
    # full covariances: k-means' partition gives each Sigma_k, EM refines the mixture on the encoded means (its
    # log-likelihood logged and never lower), and the GM-VAE trains the Cholesky factors
    spy = _Spy(monkeypatch)
    code, m = _run(tmp_path, "train.steps=200", "train.chunk_size=200", "warmup_steps=50", "data.n_train=1000",
                   "data.n_test=400", "pretrain.kind=autoencoder", "pretrain.steps=200", "mixture.init=kmeans",
                   "mixture.covariance=full", "mixture.em_iters=30", "model.z_dim=3", "n_seeds=2", "restarts=1")
    assert code == 0 and all(c["ok"] for c in m["checks"])
    sigma = np.asarray(m["prior"]["sigma"])
    assert sigma.shape == (2, 5, 3) and np.all(sigma > 0)
    assert len(m["em_init"]["accuracy"]["values"]) == 2 and len(m["kmeans_init"]["accuracy"]["values"]) == 2
    ll = m["em_log_likelihood"]
    assert all(b > a for a, b in zip(ll["first_step"], ll["last_step"], strict=True))
    assert {"latent_confusion_curves.png", "component_samples.png"} <= {p.name for p in (tmp_path / "run").iterdir()}
    # every NMI in both normalisations, each vlab.harness.metrics.nmi of the partition the accuracy was scored on:
    # k-means
    # of members 0, 1, then EM of members 0, 1, then the trained GM-VAEs
    assert len(spy.scored) == 6
    for j, block in enumerate((m["kmeans_init"], m["em_init"], m["test"])):
        for i in range(2):
            for key, want in spy.nmis(2 * j + i).items():
                assert block[key]["values"][i] == pytest.approx(want, abs=1e-12), (j, i, key)
    # z_dim = 3: the latent panel shows the projection on two principal directions; seed 0 of 2 is named
    latent = spy.figures["latent_confusion_curves"]
    assert all("principal direction" in label for label in latent["axes"][0][1:])
    assert latent["suptitle"] == "seed 0 of 2"
    assert spy.figures["component_samples"]["axes"][0][0].endswith("\nseed 0 of 2")


def test_a_vmapped_sweep_names_the_member_in_its_figures(tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    out = tmp_path / "sweep"
    code = main(["run", CFG, "train.steps=100", "train.chunk_size=100", "warmup_steps=50", "data.n_train=500",
                 "data.n_test=200", "n_seeds=1", "restarts=1", "pretrain.steps=50", "mixture.qz_fit_steps=10",
                 "--sweep", "train.optimizer.lr=0.001,0.002", "--out", str(out), "--quiet"])
    assert code == 0
    m = json.loads(next(out.glob("*/metrics.json")).read_text())
    assert [r["train.optimizer.lr"] for r in m["members"]] == [0.001, 0.002]
    for i, row in enumerate(m["members"]):  # the last two scored partitions are the trained members'
        for key, want in spy.nmis(len(spy.scored) - 2 + i).items():
            assert row[f"test.{key}"] == pytest.approx(want, abs=1e-12), (i, key)
    assert spy.figures["latent_confusion_curves"]["suptitle"] == "member: lr=0.001, seed 0"
    assert spy.figures["component_samples"]["axes"][0][0].endswith("\nmember: lr=0.001, seed 0")


@pytest.mark.parametrize("override,needle", [
    (["mixture.k=0"], "mixture.k"),
    (["mixture.k=3", "mixture.pi=[0.5,0.5]"], "mixture.pi"),
    (["mixture.k=2", "mixture.pi=[0.5,0.6]"], "summing to 1"),
    (["mixture.sigma_init=[-1.0]"], "mixture.sigma_init"),
    (["mixture.k=3", "mixture.sigma_init=[1.0,2.0]"], "mixture.sigma_init"),
    (["mixture.init=gmm"], "mixture.init"),
    (["pretrain.kind=autoencoder", "pretrain.steps=0"], "pretrain.steps"),
    (["pretrain.steps=-5"], "pretrain.steps"),
    (["mixture.covariance=tied"], "mixture.covariance"),
    (["mixture.em_iters=-1"], "mixture.em_iters"),
    (["pretrain.encoder_scale=0"], "pretrain.encoder_scale"),
])
def test_gmvae_bad_input(tmp_path, capsys, override, needle):
    code, _ = _run(tmp_path, *override)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and needle in err[-1]


def test_unlabelled_data_skip_clustering_metrics_with_a_warning(tmp_path, capsys):
    import numpy as np

    from vlab import data

    root = tmp_path / "idx"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        data.write_idx(root / data.IDX_FILES[split][0], rng.integers(0, 256, size=(40, 4, 4), dtype=np.uint8))
    code, m = _run(tmp_path, "data.source=idx", f"data.root={root}", "data.image_shape=[4,4]",
                   "model.likelihood=bernoulli", "train.steps=50", "mixture.k=3", "usage_warning=0", "n_seeds=1",
                   "restarts=1", "pretrain.steps=20", "mixture.qz_fit_steps=10")
    assert code == 0
    assert "accuracy" not in m["test"] and "elbo" in m["test"] and len(m["component_usage"]) == 3
    assert "no labels" in capsys.readouterr().err
