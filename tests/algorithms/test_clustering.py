"""k-means against exact answers: separated blobs, a brute-force optimum over every partition, monotone inertia."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlab.algorithms import clustering
from vlab.harness.metrics import clustering_accuracy


def _blobs(seed: int = 0, n_per: int = 50):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = np.concatenate([m + 0.5 * rng.standard_normal((n_per, 2)) for m in means])
    return x, np.repeat(np.arange(4), n_per)


def test_squared_distances_match_the_direct_sum(x64):
    rng = np.random.default_rng(1)
    x, c = rng.standard_normal((7, 3)), rng.standard_normal((4, 3))
    direct = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    np.testing.assert_allclose(clustering.squared_distances(jnp.asarray(x), jnp.asarray(c)), direct, atol=1e-12)


def test_separated_blobs_give_the_blob_means(x64):
    x, y = _blobs()
    res = clustering.kmeans(jax.random.PRNGKey(0), jnp.asarray(x), 4, n_init=3, n_iter=20)
    acc, mapping = clustering_accuracy(y, np.asarray(res.labels))
    assert acc == 1.0
    for k, label in mapping.items():  # the optimal centres are the sample means of the blobs
        np.testing.assert_allclose(res.centers[k], x[y == label].mean(0), atol=1e-12)
    expected = sum(((x[y == j] - x[y == j].mean(0)) ** 2).sum() for j in range(4))
    assert float(res.inertia) == pytest.approx(expected, rel=1e-12)


def test_inertia_never_increases(x64):
    x = jax.random.normal(jax.random.PRNGKey(3), (300, 5))  # no cluster structure: many Lloyd steps matter
    c0 = clustering.kmeans_plusplus(jax.random.PRNGKey(4), x, 8)
    res = clustering.lloyd(x, c0, 30)
    trace = np.asarray(res.inertia_trace)
    assert np.all(np.diff(trace) <= 1e-9 * trace[0]) and trace[-1] < trace[0]
    assert float(res.inertia) <= trace[-1] + 1e-9


def test_matches_the_brute_force_optimum_and_assignment(x64):
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1, (3, 2)), rng.normal(3, 1, (3, 2)), rng.normal([0, 4], 1, (3, 2))])
    k = 3
    # every assignment of the 9 points to 3 groups (3^9 of them), inertia of each, vectorised
    labels = np.array(list(itertools.product(range(k), repeat=len(x))))
    onehot = labels[..., None] == np.arange(k)  # (P, n, k)
    counts = onehot.sum(1)
    sums = np.einsum("pnk,nd->pkd", onehot, x)
    cost = (x**2).sum() - np.sum((sums**2).sum(-1) / np.maximum(counts, 1), -1)
    best = cost.min()
    res = clustering.kmeans(jax.random.PRNGKey(0), jnp.asarray(x), k, n_init=10, n_iter=20)
    assert float(res.inertia) == pytest.approx(best, rel=1e-10)
    c = np.asarray(res.centers)
    nearest = [int(np.argmin([np.sum((p - cj) ** 2) for cj in c])) for p in x]
    np.testing.assert_array_equal(res.labels, nearest)
    np.testing.assert_array_equal(clustering.nearest_center(jnp.asarray(x), res.centers), nearest)


@pytest.mark.parametrize("n_trials", [1, None])
def test_kmeans_plusplus_picks_distinct_points(n_trials):
    # three distinct points, repeated: D^2 = 0 at chosen points, so the three seeds are the three points, for the
    # vanilla seeding (one candidate) and the greedy one
    base = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    x = jnp.tile(base, (5, 1))
    for s in range(5):
        c = np.asarray(clustering.kmeans_plusplus(jax.random.PRNGKey(s), x, 3, n_trials))
        assert sorted(map(tuple, c.tolist())) == sorted(map(tuple, base.tolist()))
    assert float(clustering.kmeans(jax.random.PRNGKey(0), x, 3, n_init=1, n_iter=2, n_trials=n_trials).inertia) == 0.0


def test_greedy_kmeans_plusplus_reaches_the_best_inertia_as_often_as_scikit_learn(x64):
    # ten blobs where vanilla k-means++ often seeds two centres in one blob: over seeds 0-5 with 4 restarts each,
    # scikit-learn's KMeans(n_init=4) reaches the best inertia 6 times, vlab's vanilla seeding did 2 times, the
    # greedy one (2 + floor(log 10) = 4 candidates per centre) 6 times
    sk_cluster = pytest.importorskip("sklearn.cluster")
    from sklearn.datasets import make_blobs

    assert clustering.n_local_trials(10) == 4
    x, _ = make_blobs(n_samples=1500, centers=10, n_features=2, cluster_std=0.6, center_box=(-10, 10),
                      random_state=6)
    fit = lambda n_init, s: sk_cluster.KMeans(10, n_init=n_init, tol=0, max_iter=1000, random_state=s).fit(x).inertia_
    sk = [fit(4, s) for s in range(6)]
    ours = [float(clustering.kmeans(jax.random.PRNGKey(s), jnp.asarray(x), 10, n_init=4, n_iter=200).inertia)
            for s in range(6)]
    best = min(fit(20, 0), *sk, *ours)
    hits = lambda v: sum(abs(i - best) <= 1e-6 * best for i in v)
    assert hits(ours) >= hits(sk) - 1, (hits(ours), hits(sk), ours, best)


def test_vmapped_seeds_equal_separate_runs():
    x, _ = _blobs(1, 20)
    x = jnp.asarray(x, jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    xs = jnp.stack([x, x + 1.0, 2.0 * x])
    many = jax.jit(jax.vmap(lambda k, xx: clustering.kmeans(k, xx, 4, n_init=2, n_iter=10)))(keys, xs)
    for i in range(3):
        one = clustering.kmeans(keys[i], xs[i], 4, n_init=2, n_iter=10)
        np.testing.assert_allclose(many.centers[i], one.centers, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(many.labels[i], one.labels)


def test_spherical_gaussians_are_the_cluster_ml_estimates(x64):
    x, y = _blobs(2, 30)
    centers = np.stack([x[y == j].mean(0) for j in range(4)] + [np.array([50.0, 50.0])])  # the 5th is empty
    sigma, pi = clustering.spherical_gaussians(jnp.asarray(x), jnp.asarray(y), jnp.asarray(centers))
    for j in range(4):
        assert float(sigma[j]) == pytest.approx(np.sqrt(((x[y == j] - centers[j]) ** 2).mean()), rel=1e-12)
    pooled = np.mean([((x[y == j] - centers[j]) ** 2).sum() for j in range(4)]) * 4 / (2 * len(x))
    assert float(sigma[4]) == pytest.approx(np.sqrt(pooled), rel=1e-12)
    np.testing.assert_allclose(pi, np.array([30, 30, 30, 30, 1]) / 121, atol=1e-12)
    assert float(jnp.sum(pi)) == pytest.approx(1.0)


def test_diagonal_gaussians_are_the_cluster_ml_estimates(x64):
    x, y = _blobs(2, 30)
    x = x * np.array([1.0, 3.0])  # unequal spreads per dimension
    centers = np.stack([x[y == j].mean(0) for j in range(4)] + [np.array([50.0, 50.0])])  # the 5th is empty
    sigma, pi = clustering.diagonal_gaussians(jnp.asarray(x), jnp.asarray(y), jnp.asarray(centers))
    assert sigma.shape == (5, 2)
    for j in range(4):
        np.testing.assert_allclose(sigma[j], x[y == j].std(0), rtol=1e-12)
    pooled = sum(((x[y == j] - centers[j]) ** 2).sum(0) for j in range(4)) / len(x)
    np.testing.assert_allclose(sigma[4], np.sqrt(pooled), rtol=1e-12)
    np.testing.assert_allclose(pi, np.array([30, 30, 30, 30, 1]) / 121, atol=1e-12)


def test_full_gaussians_are_the_cluster_ml_covariances(x64):
    x, y = _blobs(3, 40)
    x = x @ np.array([[1.0, 0.8], [0.0, 0.6]])  # correlated clusters
    centers = np.stack([x[y == j].mean(0) for j in range(4)] + [np.array([50.0, 50.0])])  # the 5th is empty
    chol, pi = clustering.full_gaussians(jnp.asarray(x), jnp.asarray(y), jnp.asarray(centers), ridge=0.0)
    assert chol.shape == (5, 2, 2)
    np.testing.assert_allclose(np.triu(np.asarray(chol), 1), 0.0)
    for j in range(4):
        np.testing.assert_allclose(chol[j] @ chol[j].T, np.cov(x[y == j], rowvar=False, bias=True), rtol=1e-10)
    pooled = sum((x[y == j] - centers[j]).T @ (x[y == j] - centers[j]) for j in range(4)) / len(x)
    np.testing.assert_allclose(chol[4] @ chol[4].T, pooled, rtol=1e-10)
    np.testing.assert_allclose(pi, np.array([40, 40, 40, 40, 1]) / 161, atol=1e-12)


@pytest.mark.parametrize("form", ["spherical", "diagonal", "full"])
def test_component_log_probs_match_scipy(x64, form):
    from scipy import stats

    rng = np.random.default_rng(4)
    K, d = 3, 4
    mu, x = rng.normal(size=(K, d)), rng.normal(size=(2, 5, d))
    if form == "spherical":
        scale = np.exp(rng.normal(size=K) * 0.3)
        covs = [scale[k] ** 2 * np.eye(d) for k in range(K)]
    elif form == "diagonal":
        scale = np.exp(rng.normal(size=(K, d)) * 0.3)
        covs = [np.diag(scale[k] ** 2) for k in range(K)]
    else:
        scale = np.tril(rng.normal(size=(K, d, d)) * 0.4, -1) + np.stack([np.diag(np.exp(rng.normal(size=d) * 0.3))
                                                                        for _ in range(K)])
        covs = [scale[k] @ scale[k].T for k in range(K)]
    got = clustering.component_log_probs(jnp.asarray(x), jnp.asarray(mu), jnp.asarray(scale))
    want = np.stack([stats.multivariate_normal(mu[k], covs[k]).logpdf(x) for k in range(K)], -1)
    assert got.shape == (2, 5, K)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _numpy_em_step(x, mu, covs, pi):
    """One EM step written out with scipy densities: the independent oracle for gmm_em."""
    from scipy import stats

    dens = np.stack([pi[k] * stats.multivariate_normal(mu[k], covs[k]).pdf(x) for k in range(len(pi))], -1)
    ll = np.mean(np.log(dens.sum(-1)))
    r = dens / dens.sum(-1, keepdims=True)
    nk = r.sum(0)
    mu_new = (r.T @ x) / nk[:, None]
    covs_new = [((x - mu_new[k]).T * r[:, k]) @ (x - mu_new[k]) / nk[k] for k in range(len(pi))]
    return mu_new, covs_new, nk / len(x), ll


@pytest.mark.parametrize("form", ["spherical", "diagonal", "full"])
def test_gmm_em_step_matches_an_independent_computation(x64, form):
    x, _ = _blobs(5, 30)
    x = x @ np.array([[1.0, 0.5], [0.0, 0.8]])
    rng = np.random.default_rng(6)
    K, d = 3, 2
    mu = x[rng.choice(len(x), K, replace=False)]
    pi = np.array([0.2, 0.3, 0.5])
    scale = {"spherical": np.full(K, 2.0), "diagonal": np.full((K, d), 2.0),
             "full": np.stack([np.linalg.cholesky(np.array([[4.0, 1.0], [1.0, 3.0]]))] * K)}[form]
    covs = [scale[k] @ scale[k].T if form == "full" else np.diag(np.broadcast_to(scale[k] ** 2, (d,)))
            for k in range(K)]
    mu1, covs1, pi1, ll0 = _numpy_em_step(x, mu, covs, pi)
    res = clustering.gmm_em(jnp.asarray(x), jnp.asarray(mu), jnp.asarray(scale), jnp.asarray(pi), 1, ridge=0.0)
    assert float(res.log_likelihood_trace[0]) == pytest.approx(ll0, rel=1e-12)
    np.testing.assert_allclose(res.means, mu1, rtol=1e-10)
    np.testing.assert_allclose(res.weights, pi1, rtol=1e-10)
    for k in range(K):
        s = np.asarray(res.scales[k])
        if form == "full":
            np.testing.assert_allclose(s @ s.T, covs1[k], rtol=1e-10)
        elif form == "diagonal":
            np.testing.assert_allclose(s ** 2, np.diag(covs1[k]), rtol=1e-10)
        else:
            assert float(s) ** 2 == pytest.approx(np.trace(covs1[k]) / d, rel=1e-10)


def test_gmm_em_log_likelihood_never_decreases_and_moves_the_kmeans_boundary(x64):
    # a wide cluster beside a narrow one: k-means puts the boundary halfway between the centres and hands the wide
    # cluster's near tail to the narrow one; EM on full covariances moves the boundary to the Bayes one
    rng = np.random.default_rng(7)
    n = 500
    x = np.concatenate([rng.normal(0.0, 3.0, (n, 2)), np.array([7.0, 0.0]) + rng.normal(0.0, 0.3, (n, 2))])
    y = np.repeat([0, 1], n)
    km = clustering.kmeans(jax.random.PRNGKey(0), jnp.asarray(x), 2, n_init=4, n_iter=50)
    km_acc = clustering_accuracy(y, np.asarray(km.labels))[0]
    chol, pi = clustering.full_gaussians(jnp.asarray(x), km.labels, km.centers)
    res = clustering.gmm_em(jnp.asarray(x), km.centers, chol, pi, 100)
    trace = np.asarray(res.log_likelihood_trace)
    assert np.all(np.diff(trace) >= -1e-9) and trace[-1] > trace[0] + 0.05
    em_acc = clustering_accuracy(y, np.asarray(res.labels))[0]
    assert km_acc < 0.95 and em_acc >= 0.98, (km_acc, em_acc)


def test_gmm_keeps_the_restart_of_highest_likelihood(x64):
    x, y = _blobs(8, 40)
    x = x @ np.array([[1.0, 0.6], [0.0, 0.5]])
    res = clustering.gmm(jax.random.PRNGKey(3), jnp.asarray(x), 4, covariance=clustering.FULL, n_init=3, em_iters=30)
    runs = [clustering.gmm_em(jnp.asarray(x), km.centers, *clustering.full_gaussians(jnp.asarray(x), km.labels,
                                                                                      km.centers), 30)
            for km in (clustering.lloyd(jnp.asarray(x), clustering.kmeans_plusplus(kk, jnp.asarray(x), 4), 50)
                       for kk in jax.random.split(jax.random.PRNGKey(3), 3))]
    assert float(res.log_likelihood) == pytest.approx(max(float(r.log_likelihood) for r in runs), rel=1e-12)
    assert clustering_accuracy(y, np.asarray(res.labels))[0] == 1.0
    # the final log-likelihood is the mixture's own: (1/n) sum_i log sum_k pi_k N(x_i; mu_k, Sigma_k)
    from scipy import stats
    dens = sum(float(res.weights[k]) * stats.multivariate_normal(np.asarray(res.means[k]), np.asarray(
        res.scales[k] @ res.scales[k].T)).pdf(x) for k in range(4))
    assert float(res.log_likelihood) == pytest.approx(np.mean(np.log(dens)), rel=1e-10)


FORMS = {"spherical": (clustering.SPHERICAL, clustering.spherical_gaussians),
         "diagonal": (clustering.DIAGONAL, clustering.diagonal_gaussians),
         "full": (clustering.FULL, clustering.full_gaussians)}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_mixture_start_is_the_kmeans_partition_or_em_from_it(x64, name):
    covariance, partition = FORMS[name]
    x, y = _blobs(2)
    x = jnp.asarray(x)
    key = jax.random.key(5)
    km = clustering.kmeans(key, x, 4, n_init=3, n_iter=30)
    s = clustering.mixture_start(key, x, 4, covariance=covariance, n_init=3, kmeans_iters=30)
    scale, pi = partition(x, km.labels, km.centers)
    np.testing.assert_allclose(s.kmeans.centers, km.centers, atol=1e-12)
    np.testing.assert_allclose(s.means, km.centers, atol=1e-12)
    np.testing.assert_allclose(s.scales, scale, atol=1e-12)
    np.testing.assert_allclose(s.weights, pi, atol=1e-12)
    assert s.log_likelihood_trace.shape == (0,)
    em = clustering.mixture_start(key, x, 4, covariance=covariance, n_init=3, kmeans_iters=30, em_iters=15)
    g = clustering.gmm(key, x, 4, covariance=covariance, n_init=3, kmeans_iters=30, em_iters=15)
    for a, b in ((em.means, g.means), (em.scales, g.scales), (em.weights, g.weights),
                 (em.log_likelihood_trace, g.log_likelihood_trace)):
        np.testing.assert_allclose(a, b, atol=1e-12)
    # the most probable component of the training points is EM's own hard assignment argmax_k r_ik
    np.testing.assert_array_equal(clustering.mixture_assign(x, em.means, em.scales, em.weights), g.labels)
    assert clustering_accuracy(y, np.asarray(clustering.mixture_assign(x, em.means, em.scales, em.weights)))[0] == 1.0


def test_mixture_assign_is_the_argmax_of_the_weighted_densities(x64):
    from scipy import stats

    rng = np.random.default_rng(7)
    mu, sd, x = rng.normal(size=(3, 2)), np.exp(rng.normal(size=(3, 2)) * 0.3), rng.normal(size=(40, 2)) * 2
    pi = np.array([0.2, 0.5, 0.3])
    dens = np.stack([pi[k] * stats.multivariate_normal(mu[k], np.diag(sd[k] ** 2)).pdf(x) for k in range(3)], -1)
    got = clustering.mixture_assign(jnp.asarray(x), jnp.asarray(mu), jnp.asarray(sd), jnp.asarray(pi))
    np.testing.assert_array_equal(got, np.argmax(dens, -1))


@pytest.mark.parametrize("name", sorted(FORMS))
def test_each_covariance_forms_isotropic_scales_are_sigma_times_the_identity(x64, name):
    rng = np.random.default_rng(6)
    K, d = 3, 4
    mu, x, sigma = rng.normal(size=(K, d)), rng.normal(size=(5, d)), np.exp(rng.normal(size=K))
    scale = FORMS[name][0].isotropic(jnp.asarray(sigma), d)
    assert scale.shape == {"spherical": (K,), "diagonal": (K, d), "full": (K, d, d)}[name]
    np.testing.assert_allclose(clustering.component_log_probs(jnp.asarray(x), jnp.asarray(mu), scale),
                               clustering.component_log_probs(jnp.asarray(x), jnp.asarray(mu), jnp.asarray(sigma)),
                               rtol=1e-12)
