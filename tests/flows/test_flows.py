"""Every bijection: inverse(forward(u)) = u, and log|det J| equals slogdet of jax.jacfwd, on random inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlab import flows

DIM = 3
RELU = flows.Conditioner(hidden=16, activation=jax.nn.relu, bias_init=0.0)


def _perturbed(b: flows.Bijection, key: jax.Array, scale: float = 0.3):
    """Parameters moved away from the identity start, so the checks are not trivial."""
    k1, k2 = jax.random.split(key)
    p = b.init(k1)
    leaves, tree = jax.tree.flatten(p)
    keys = list(jax.random.split(k2, max(len(leaves), 1)))[:len(leaves)]
    moved = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(tree, moved)


UNITS = {
    "elementwise_affine": lambda: flows.elementwise_affine(DIM, loc=jnp.array([1.0, -2.0, 0.5]),
                                                           scale=jnp.array([0.5, 2.0, 1.5])),
    "permutation": lambda: flows.permutation([2, 0, 1]),
    "affine_coupling": lambda: flows.affine_coupling(DIM, [True, False, True], RELU, flows.tanh_log_scale),
    "spline_coupling": lambda: flows.spline_coupling(DIM, [True, False, False], bins=5, bound=2.0, conditioner=RELU),
    "planar": lambda: flows.planar(DIM, init_scale=1.0),
    "rotation": lambda: flows.rotation(DIM, jax.random.key(3)),
    "inverted_coupling": lambda: flows.invert(flows.affine_coupling(DIM, [True, False, True], RELU,
                                                                    flows.softplus_log_scale)),
    "rotation_mixed_stack": lambda: flows.affine_flow(DIM, 2, conditioner=flows.Conditioner(hidden=4),
                                                      rotations=True),
    "chain": lambda: flows.chain([flows.affine_coupling(DIM, [True, False, True], RELU._replace(hidden=8),
                                                        flows.tanh_log_scale),
                                  flows.permutation([1, 2, 0]),
                                  flows.rotation(DIM, jax.random.key(9)),
                                  flows.planar(DIM, init_scale=1.0),
                                  flows.elementwise_affine(DIM)]),
}


@pytest.mark.parametrize("name", sorted(UNITS))
def test_inverse_and_log_det(name, x64):
    b = UNITS[name]()
    params = _perturbed(b, jax.random.key(1))
    u = 1.5 * jax.random.normal(jax.random.key(2), (16, DIM))  # some points land in the spline tails

    @jax.jit
    def check(params, u):
        x, ld = jax.vmap(b.forward, in_axes=(None, 0))(params, u)
        u_back, ld_inv = jax.vmap(b.inverse, in_axes=(None, 0))(params, x)
        jac = jax.vmap(jax.jacfwd(lambda v: b.forward(params, v)[0]))(u)
        jac_inv = jax.vmap(jax.jacfwd(lambda v: b.inverse(params, v)[0]))(x)
        return u_back, ld, ld_inv, jnp.linalg.slogdet(jac)[1], jnp.linalg.slogdet(jac_inv)[1]

    u_back, ld, ld_inv, ld_jac, ld_inv_jac = check(params, u)
    np.testing.assert_allclose(u_back, u, atol=1e-9)
    np.testing.assert_allclose(ld + ld_inv, 0.0, atol=1e-7)
    np.testing.assert_allclose(ld, ld_jac, atol=1e-8)
    np.testing.assert_allclose(ld_inv, ld_inv_jac, atol=1e-7)


def test_couplings_start_as_identity(x64):
    for make in (flows.affine_flow, flows.spline_flow):
        b = make(2, 4, conditioner=flows.Conditioner(hidden=8, bias_init=2.0))
        p = b.init(jax.random.key(0))
        u = jax.random.normal(jax.random.key(3), (10, 2)) * 3
        x, ld = jax.vmap(b.forward, in_axes=(None, 0))(p, u)
        np.testing.assert_allclose(x, u, atol=1e-12)
        np.testing.assert_allclose(ld, 0.0, atol=1e-12)


def test_conditioner_biases_spread_the_first_layer_kinks():
    p = flows.conditioner_init(jax.random.key(0), [1, 256, 64, 4], bias=2.0)
    b = np.asarray(p[0]["b"])
    assert np.all(np.abs(b) <= 2.0) and b.std() > 0.9  # U(-2, 2) has std 2/sqrt(3)
    kinks = -b / np.asarray(p[0]["w"][0])
    assert 0.3 < np.mean(np.abs(kinks) < 1.0) < 0.9  # not all at x = 0
    assert not np.any(p[1]["b"]) and not np.any(p[-1]["w"]) and not np.any(p[-1]["b"])
    plain = flows.conditioner_init(jax.random.key(0), [1, 256, 64, 4])
    assert not np.any(plain[0]["b"])
    np.testing.assert_array_equal(plain[0]["w"], p[0]["w"])


def test_one_dimensional_flows(x64):
    small = flows.Conditioner(hidden=8)
    for b in (flows.affine_flow(1, 2, conditioner=small), flows.spline_flow(1, 2, conditioner=small),
              flows.planar_flow(1, 2)):
        p = _perturbed(b, jax.random.key(4))
        u = jax.random.normal(jax.random.key(5), (20, 1))

        @jax.jit
        def check(p, u, b=b):
            x, ld = jax.vmap(b.forward, in_axes=(None, 0))(p, u)
            back, _ = jax.vmap(b.inverse, in_axes=(None, 0))(p, x)
            d = jax.vmap(jax.grad(lambda v: b.forward(p, v[None])[0][0]))(u[:, 0])
            return back, ld, jnp.log(jnp.abs(d))

        back, ld, ld_grad = check(p, u)
        np.testing.assert_allclose(back, u, atol=1e-9)
        np.testing.assert_allclose(ld, ld_grad, atol=1e-8)


def test_planar_constraint_keeps_it_invertible(x64):
    w = jnp.array([1.0, 0.5])
    for u in (jnp.array([-5.0, -3.0]), jnp.array([2.0, 0.0]), jnp.array([-0.1, 0.1])):
        assert float(jnp.dot(w, flows.planar_u_hat(w, u))) > -1.0
    # the Newton step gives the inverse's parameter gradient its implicit-function value
    b = flows.planar(2, init_scale=1.0)
    p = _perturbed(b, jax.random.key(6))
    x = jnp.array([0.3, -0.7])
    g = jax.grad(lambda q: b.inverse(q, x)[0].sum())(p)
    eps = 1e-6
    bp = dict(p, b=p["b"] + eps)
    bm = dict(p, b=p["b"] - eps)
    fd = (b.inverse(bp, x)[0].sum() - b.inverse(bm, x)[0].sum()) / (2 * eps)
    np.testing.assert_allclose(g["b"], fd, rtol=1e-6)


def test_spline_with_identity_parameters_is_identity(x64):
    xk, yk, dk = flows.rq_spline_params(jnp.zeros(3 * 5 - 1), 2.0)
    x = jnp.linspace(-3, 3, 41)
    y, ld = jax.vmap(flows.rq_spline_forward, in_axes=(0, None, None, None))(x, xk, yk, dk)
    np.testing.assert_allclose(y, x, atol=1e-12)
    np.testing.assert_allclose(ld, 0.0, atol=1e-12)


@pytest.mark.parametrize("bad", [
    lambda: flows.affine_flow(2, 0),
    lambda: flows.spline_flow(2, 2, bins=1),
    lambda: flows.planar_flow(2, 0),
    lambda: flows.coupling_flow(2, 0, lambda d, mask: flows.affine_coupling(d, mask)),
    lambda: flows.chain([]),
    lambda: flows.permutation([0, 0, 1]),
    lambda: flows.affine_coupling(2, [True, True]),
])
def test_bad_construction_is_a_value_error(bad):
    with pytest.raises(ValueError):
        bad()


def test_make_flow_builds_the_configured_stack_and_its_standardising_layer(x64):
    from vlab.harness.flow_config import FlowConfig, make_flow

    loc, scale = jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0])
    spec = FlowConfig(layers=3, hidden=8)
    f = make_flow(spec, 2, loc, scale)
    p = f.init(jax.random.key(0))
    assert len(p) == 4  # three couplings and the last elementwise layer
    # the couplings start as the identity: the whole flow starts as u -> u * scale + loc
    u = jax.random.normal(jax.random.key(1), (8, 2))
    x, ld = jax.vmap(f.forward, in_axes=(None, 0))(p, u)
    np.testing.assert_allclose(x, u * scale + loc, atol=1e-12)
    np.testing.assert_allclose(ld, jnp.sum(jnp.log(scale)), atol=1e-12)
    assert len(make_flow(FlowConfig(layers=3, hidden=8, standardize=False), 2, loc, scale).init(
        jax.random.key(0))) == 3
    assert len(make_flow(spec, 2).init(jax.random.key(0))) == 3


def test_standardized_init_equals_the_flow_built_at_that_location_and_scale(x64):
    """One flow, many members: standardized_init(flow, key, loc, scale) (vmapped over members with their own data
    moments) is exactly the init of the flow built at (loc, scale), for every member."""
    from vlab.harness.flow_config import FlowConfig, make_flow, standardized_init

    spec = FlowConfig(layers=2, hidden=8)
    flow = make_flow(spec, 2, jnp.zeros(2), jnp.ones(2))
    keys = jax.random.split(jax.random.key(2), 3)
    locs, scales = jnp.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]]), jnp.array([[1.0, 2.0], [0.3, 0.7], [4.0, 1.0]])
    members = jax.jit(jax.vmap(lambda k, a, b: standardized_init(flow, k, a, b)))(keys, locs, scales)
    for i in range(3):
        ref = make_flow(spec, 2, locs[i], scales[i]).init(keys[i])
        jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-12), members, ref)
    with pytest.raises(ValueError, match="elementwise_affine"):
        standardized_init(make_flow(spec, 2), keys[0], locs[0], scales[0])


@pytest.mark.parametrize("kind", ["affine", "spline", "planar"])
def test_make_flow_resolves_the_config_names_into_the_kinds_constructor(kind, x64):
    """FlowConfig's names become the constructor of its kind, the activation callable of vlab.nn.ACTIVATIONS, the
    log-scale callable, and the direction and mixing flags: make_flow equals the constructor called directly."""
    from vlab.harness.flow_config import FlowConfig, make_flow
    from vlab.nn import ACTIVATIONS

    spec = FlowConfig(kind=kind, layers=3, hidden=8, depth=1, activation="tanh", affine_scale="exp", bins=4,
                      bound=2.5, direction="base_to_data", mixing="rotation", bias_init=1.0)
    loc, scale = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.5, 3.0, 1.0])
    cond = flows.Conditioner(hidden=8, depth=1, activation=ACTIVATIONS["tanh"], bias_init=1.0)
    common = dict(conditioner=cond, invert_couplings=False, rotations=True, loc=loc, scale=scale)
    direct = {"affine": lambda: flows.affine_flow(DIM, 3, log_scale=flows.tanh_log_scale, **common),
              "spline": lambda: flows.spline_flow(DIM, 3, bins=4, bound=2.5, **common),
              "planar": lambda: flows.planar_flow(DIM, 3, loc=loc, scale=scale)}[kind]()
    built = make_flow(spec, DIM, loc, scale)
    p = _perturbed(built, jax.random.key(7))
    u = jax.random.normal(jax.random.key(8), (6, DIM))
    jax.tree.map(np.testing.assert_array_equal, built.init(jax.random.key(0)), direct.init(jax.random.key(0)))
    for fn in ("forward", "inverse"):
        jax.tree.map(np.testing.assert_array_equal, jax.vmap(getattr(built, fn), in_axes=(None, 0))(p, u),
                     jax.vmap(getattr(direct, fn), in_axes=(None, 0))(p, u))
