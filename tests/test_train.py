"""The training engine: compiles once, chunking does not change results, members are independent, NaNs stop."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vlab.config import OptimizerConfig, build_optimizer
from vlab.errors import TrainingDiverged
from vlab.optim import lr_factor
from vlab.runs import Run
from vlab.train import fit


def noisy_quadratic(params, batch, key):
    """E||x - target||^2 with a noisy gradient: exercises keys and batches."""
    noise = 0.01 * jax.random.normal(key, params["x"].shape)
    loss = jnp.sum((params["x"] - batch["target"] + noise) ** 2)
    return loss, {"x0": params["x"][0]}


def batch_fn(data, key):
    return {"target": data["target"] + 0.01 * jax.random.normal(key, data["target"].shape)}


DATA = {"target": jnp.array([1.0, -2.0, 3.0])}


def run_fit(steps=600, chunk=200, n=None, **kw):
    x0 = jnp.zeros((n, 3)) if n else jnp.zeros(3)
    return fit(noisy_quadratic, {"x": x0}, optax.adam(0.05), jax.random.key(0), steps=steps, chunk_size=chunk,
               data=DATA, batch_fn=batch_fn, n_members=n, progress=False, **kw)


def test_compiles_once_and_chunking_does_not_change_the_result():
    a = run_fit(steps=600, chunk=200)
    b = run_fit(steps=600, chunk=600)
    c = run_fit(steps=600, chunk=250)  # a last, partial chunk is masked, not recompiled
    assert a.compiles == 1 and b.compiles == 1 and c.compiles == 1
    np.testing.assert_array_equal(np.asarray(a.params["x"]), np.asarray(b.params["x"]))
    np.testing.assert_array_equal(np.asarray(a.params["x"]), np.asarray(c.params["x"]))
    np.testing.assert_allclose(np.asarray(a.params["x"]), [1.0, -2.0, 3.0], atol=0.05)


def test_history_records_every_log_every_step_and_the_last():
    r = run_fit(steps=95, chunk=40, log_every=10)
    assert list(r.history["step"]) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 94]
    assert r.history["loss"].shape == (11,)


def test_members_are_vmapped_and_independent():
    r = run_fit(steps=300, chunk=100, n=4)
    assert r.params["x"].shape == (4, 3)
    assert r.history["loss"].shape[1] == 4
    # different keys per member: the noisy paths differ, yet all converge
    assert not np.allclose(r.history["x0"][:, 0], r.history["x0"][:, 1])
    np.testing.assert_allclose(np.asarray(r.params["x"]), np.tile([1.0, -2.0, 3.0], (4, 1)), atol=0.1)


def test_nan_stops_training_with_step_and_metric(tmp_path):
    """t grows by one per sgd step (gradient -1); the loss turns NaN once t reaches 5, i.e. at step 5."""

    def loss(params, batch, key):
        bad = jnp.where(params["t"] >= 5.0, jnp.nan, 0.0)
        return jnp.sum((params["x"] - 1.0) ** 2) - params["t"] + bad, {"t": params["t"]}

    run = Run(tmp_path / "r", quiet=True)
    params = {"x": jnp.zeros(2), "t": jnp.zeros(())}
    with pytest.raises(TrainingDiverged, match=r"loss became non-finite at step 5"):
        fit(loss, params, optax.sgd(1.0), jax.random.key(0), steps=20, chunk_size=4, run=run, progress=False)
    ckpt = run.load_checkpoint("fit")
    assert ckpt is not None and int(ckpt["step"]) == 4  # the last finite chunk's parameters are kept


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    full = run_fit(steps=500, chunk=100, run=Run(tmp_path / "a", quiet=True), checkpoint_every=100)
    run_c = Run(tmp_path / "c", quiet=True)
    calls = {"n": 0}
    from vlab import progress

    orig = progress.Progress.update

    def interrupt(self, done, metrics):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        orig(self, done, metrics)

    progress.Progress.update = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            run_fit(steps=500, chunk=100, run=run_c, checkpoint_every=100)
    finally:
        progress.Progress.update = orig
    assert int(run_c.load_checkpoint("fit")["step"]) == 200
    run_c.close()  # the interrupted process ends and its lock on the folder with it
    resumed = run_fit(steps=500, chunk=100, run=Run(tmp_path / "c", resume=True, quiet=True), checkpoint_every=100)
    np.testing.assert_array_equal(np.asarray(resumed.params["x"]), np.asarray(full.params["x"]))
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop", "adabelief", "lamb"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "exponential", "warmup_cosine"])
def test_every_optimizer_and_schedule_builds_and_descends(name, schedule):
    cfg = OptimizerConfig(name=name, lr=0.05, schedule=schedule, warmup_steps=5, clip_norm=10.0, momentum=0.5)
    opt = build_optimizer(cfg, steps=50)
    params = jnp.array([2.0, -1.0])
    state = opt.init(params)
    loss = lambda p: jnp.sum(p**2)
    start = loss(params)
    for _ in range(20):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert loss(params) < start


def test_lr_scale_trains_each_member_with_its_own_learning_rate():
    """Member i with lr_scale[i] follows exactly the separate run with learning rate lr_scale[i] * lr (and the
    same schedule), because every optax rule is linear in its learning rate."""
    keys = jax.random.split(jax.random.key(3), 3)
    scales = [0.25, 1.0, 4.0]
    sched = lambda lr: optax.warmup_cosine_decay_schedule(0.0, lr, 20, 150)  # noqa: E731
    res = fit(noisy_quadratic, {"x": jnp.zeros((3, 3))}, optax.chain(optax.adam(sched(0.02)), lr_factor()), keys,
              steps=150, chunk_size=60, data=DATA, batch_fn=batch_fn, n_members=3, lr_scale=scales, progress=False)
    for i, s in enumerate(scales):
        one = fit(noisy_quadratic, {"x": jnp.zeros(3)}, optax.adam(sched(0.02 * s)), keys[i], steps=150,
                  chunk_size=60, data=DATA, batch_fn=batch_fn, progress=False)
        np.testing.assert_allclose(res.params["x"][i], one.params["x"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(res.params["x"][0], res.params["x"][2])
    with pytest.raises(ValueError, match="n_members"):
        fit(noisy_quadratic, {"x": jnp.zeros(3)}, optax.adam(0.1), jax.random.key(0), steps=2, lr_scale=[1.0],
            progress=False)
    with pytest.raises(ValueError, match="learning-rate factor"):  # found by name; none here
        fit(noisy_quadratic, {"x": jnp.zeros((3, 3))}, optax.adam(0.1), keys, steps=2, n_members=3, lr_scale=scales,
            progress=False)


def test_lr_scale_leaves_a_counter_beside_the_parameters_alone():
    """The learning-rate factor scales the rule's updates only: a step counter the optimiser keeps beside the
    parameters (the VAE's KL warm-up clock) ticks once per step for every member."""
    from vlab.objectives.vae import vae_optimizer

    params = {"model": {"x": jnp.zeros((2, 3))}, "beta": jnp.ones(2), "step": jnp.zeros(2)}
    loss = lambda p, batch, key: (noisy_quadratic(p["model"], batch, key)[0] + 0.0 * p["step"], {})
    opt = vae_optimizer(build_optimizer(OptimizerConfig(lr=0.02), 40))
    res = fit(loss, params, opt, jax.random.split(jax.random.key(0), 2), steps=40, chunk_size=20, data=DATA,
              batch_fn=batch_fn, n_members=2, lr_scale=[1.0, 4.0], progress=False)
    np.testing.assert_array_equal(res.params["step"], [40.0, 40.0])


def test_a_batch_of_member_keys_is_used_as_given():
    keys = jax.random.split(jax.random.key(5), 2)
    both = fit(
        noisy_quadratic, {"x": jnp.zeros((2, 3))}, optax.adam(0.05), keys, steps=50, chunk_size=50, data=DATA,
        batch_fn=batch_fn, n_members=2, progress=False)
    for i in range(2):
        one = fit(noisy_quadratic, {"x": jnp.zeros(3)}, optax.adam(0.05), keys[i], steps=50, chunk_size=50,
                  data=DATA, batch_fn=batch_fn, progress=False)
        np.testing.assert_allclose(both.params["x"][i], one.params["x"], rtol=1e-6)


def test_with_step_passes_the_global_step_across_chunks():
    def tempered(params, batch, key, step):
        t = jnp.minimum(1.0, (step + 1.0) / 40.0)
        loss, aux = noisy_quadratic(params, batch, key)
        return t * loss, {**aux, "t": t, "seen": step.astype(jnp.float32)}

    full = fit(tempered, {"x": jnp.zeros(3)}, optax.adam(0.05), jax.random.key(0), steps=60, chunk_size=25,
               log_every=1, data=DATA, batch_fn=batch_fn, progress=False, with_step=True)
    np.testing.assert_array_equal(full.history["seen"], np.arange(60))
    np.testing.assert_allclose(full.history["t"], np.minimum(1.0, (np.arange(60) + 1.0) / 40.0), rtol=1e-6)
    assert full.compiles == 1


def test_aux_names_may_not_shadow_the_history_columns():
    with pytest.raises(ValueError, match="'step'"):
        fit(lambda p, b, k: (jnp.sum(p**2), {"step": jnp.sum(p)}), jnp.ones(2), optax.sgd(0.1), jax.random.key(0),
            steps=3, progress=False)


def test_checkpoints_name_their_leaves_and_refuse_a_renamed_or_reshaped_parameter(tmp_path):
    from vlab.errors import ConfigError

    loss = lambda p, batch, key: (jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2), {})
    params = {"w": jnp.ones(3), "b": jnp.ones(2)}
    run = Run(tmp_path / "n", quiet=True)
    fit(loss, params, optax.adam(0.1), jax.random.key(0), steps=20, chunk_size=10, run=run, progress=False)
    run.close()
    saved = run.load_checkpoint("fit")
    assert {"params['w']", "params['b']", "opt_state[0].mu['w']", "step"} <= set(saved)
    np.testing.assert_array_equal(saved["params['w']"].shape, (3,))
    for other, needle in (({"w2": jnp.ones(3), "b": jnp.ones(2)}, "has no params['w2'] and holds params['w']"),
                          ({"w": jnp.ones(4), "b": jnp.ones(2)}, "params['w'] is float32[3] but the model's is "
                                                                 "float32[4]")):
        l2 = lambda p, batch, key: (sum(jnp.sum(v ** 2) for v in p.values()), {})
        with Run(tmp_path / "n", resume=True, quiet=True) as again, pytest.raises(ConfigError, match=re.escape(needle)):
            fit(l2, other, optax.adam(0.1), jax.random.key(0), steps=30, chunk_size=10, run=again, progress=False)
