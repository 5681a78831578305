"""The training engine: compiles once, chunking does not change results, members are independent, NaNs stop,
hyperparameters and the step reach the objective, checkpoints resume and refuse what does not fit."""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vlab.engine import callbacks as cb
from vlab.engine import fit
from vlab.engine.optim import lr_factor
from vlab.errors import ConfigError, TrainingDiverged
from vlab.harness.optimizers import OptimizerConfig, build_optimizer, optimizer_names
from vlab.harness.runs import Run


def noisy_quadratic(params, batch, key, hp):
    """E||x - target||^2 with a noisy gradient: exercises keys and batches."""
    noise = 0.01 * jax.random.normal(key, params["x"].shape)
    loss = jnp.sum((params["x"] - batch["target"] + noise) ** 2)
    return loss, {"x0": params["x"][0]}


def batch_fn(data, key):
    return {"target": data["target"] + 0.01 * jax.random.normal(key, data["target"].shape)}


DATA = {"target": jnp.array([1.0, -2.0, 3.0])}


def to_run(run, name="fit", every=0, labels=None):
    """The callbacks a run folder gets: checkpoints, history rows, timings."""
    return [cb.Checkpoint(run, name, every), cb.History(run, name, labels), cb.Timings(run)]


def run_fit(steps=600, chunk=200, n=None, run=None, checkpoint_every=0, **kw):
    x0 = jnp.zeros((n, 3)) if n else jnp.zeros(3)
    keys = jax.random.split(jax.random.key(0), n) if n else jax.random.key(0)
    callbacks = kw.pop("callbacks", to_run(run, every=checkpoint_every) if run is not None else ())
    return fit(noisy_quadratic, {"x": x0}, optax.adam(0.05), keys, steps=steps, chunk_size=chunk,
               data=DATA, batch_fn=batch_fn, callbacks=callbacks, **kw)


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

    def loss(params, batch, key, hp):
        bad = jnp.where(params["t"] >= 5.0, jnp.nan, 0.0)
        return jnp.sum((params["x"] - 1.0) ** 2) - params["t"] + bad, {"t": params["t"]}

    run = Run(tmp_path / "r", quiet=True)
    params = {"x": jnp.zeros(2), "t": jnp.zeros(())}
    with pytest.raises(TrainingDiverged, match=r"loss became non-finite at step 5"):
        fit(loss, params, optax.sgd(1.0), jax.random.key(0), steps=20, chunk_size=4, callbacks=to_run(run))
    ckpt = run.load_checkpoint("fit")
    assert ckpt is not None and int(ckpt["step"]) == 4  # the last finite chunk's parameters are kept


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    full = run_fit(steps=500, chunk=100, run=Run(tmp_path / "a", quiet=True), checkpoint_every=100)
    run_c = Run(tmp_path / "c", quiet=True)
    calls = {"n": 0}
    class Interrupt(cb.Callback):
        def on_chunk(self, loop, rows):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(noisy_quadratic, {"x": jnp.zeros(3)}, optax.adam(0.05), jax.random.key(0), steps=500, chunk_size=100,
            data=DATA, batch_fn=batch_fn, callbacks=[*to_run(run_c, every=100), Interrupt()])
    assert int(run_c.load_checkpoint("fit")["step"]) == 200
    run_c.close()  # the interrupted process ends and its lock on the folder with it
    resumed = run_fit(steps=500, chunk=100, run=Run(tmp_path / "c", resume=True, quiet=True), checkpoint_every=100)
    np.testing.assert_array_equal(np.asarray(resumed.params["x"]), np.asarray(full.params["x"]))
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])


def descends(cfg: OptimizerConfig) -> bool:
    """Whether 20 steps of the optimiser ``cfg`` builds lower sum(p^2) from (2, -1)."""
    opt = build_optimizer(cfg, steps=50)
    params = jnp.array([2.0, -1.0])
    state = opt.init(params)
    loss = lambda p: jnp.sum(p**2)
    start = loss(params)
    for _ in range(20):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    return bool(loss(params) < start)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop", "adabelief", "lamb"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "exponential", "warmup_cosine"])
def test_every_optimizer_and_schedule_builds_and_descends(name, schedule):
    momentum = 0.5 if name in ("sgd", "rmsprop") else None
    cfg = OptimizerConfig(name=name, lr=0.05, schedule=schedule, warmup_steps=5, clip_norm=10.0, momentum=momentum)
    assert descends(cfg)


def test_any_optax_optimizer_is_reachable_by_name_with_its_keyword_arguments():
    names = optimizer_names()
    assert {"adam", "sgd", "lion", "adafactor", "novograd", "yogi", "radam"} <= set(names)
    assert not any(n.startswith("scale_by") for n in names)
    for name in ("lion", "novograd", "yogi", "radam", "adamax", "sm3"):
        assert descends(OptimizerConfig(name=name, lr=0.05)), name
    assert descends(OptimizerConfig(name="sgd", lr=0.05, momentum=0.9, options={"nesterov": True}))
    # the options reach optax: sgd with nesterov momentum is optax.sgd(lr, momentum=0.9, nesterov=True)
    cfg = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, options={"nesterov": True})
    ours, theirs = build_optimizer(cfg, steps=10), optax.sgd(0.1, momentum=0.9, nesterov=True)
    g, p = jnp.array([1.0, -2.0]), jnp.zeros(2)
    s1, s2 = ours.init(p), theirs.init(p)
    for _ in range(3):
        u1, s1 = ours.update(g, s1, p)
        u2, s2 = theirs.update(g, s2, p)
    np.testing.assert_allclose(u1, u2, rtol=1e-6)


@pytest.mark.parametrize(("cfg", "words"), [
    (dict(name="adamx"), ["'train.optimizer.name'", "'adamx'", "adam,", "lion", "sgd"]),
    (dict(name="adam", momentum=0.5), ["'train.optimizer.momentum'", "optax.adam takes no 'momentum'", "b1"]),
    (dict(name="sgd", options={"nesterov": True, "bogus": 1}), ["'train.optimizer.options.bogus'", "nesterov"]),
    (dict(name="adam", options={"learning_rate": 1.0}), ["'train.optimizer.options.learning_rate'"]),
])
def test_an_unknown_optimizer_or_keyword_is_one_line_naming_the_key(cfg, words):
    with pytest.raises(ConfigError) as e:
        OptimizerConfig(**cfg).check("train.optimizer.")
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_lr_factor_trains_each_member_with_its_own_learning_rate():
    """Member i with hp["lr_factor"][i] = s follows exactly the separate run with learning rate s * lr (and the
    same schedule), because every optax rule is linear in its learning rate."""
    keys = jax.random.split(jax.random.key(3), 3)
    scales = jnp.asarray([0.25, 1.0, 4.0])
    sched = lambda lr: optax.warmup_cosine_decay_schedule(0.0, lr, 20, 150)  # noqa: E731
    res = fit(noisy_quadratic, {"x": jnp.zeros((3, 3))}, optax.chain(optax.adam(sched(0.02)), lr_factor()), keys,
              steps=150, chunk_size=60, data=DATA, batch_fn=batch_fn, hp={"lr_factor": scales})
    for i, s in enumerate(scales):
        one = fit(noisy_quadratic, {"x": jnp.zeros(3)}, optax.adam(sched(0.02 * float(s))), keys[i], steps=150,
                  chunk_size=60, data=DATA, batch_fn=batch_fn)
        np.testing.assert_allclose(res.params["x"][i], one.params["x"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(res.params["x"][0], res.params["x"][2])
    with pytest.raises(ValueError, match="leading axis of 3"):  # one factor per member
        fit(noisy_quadratic, {"x": jnp.zeros((3, 3))}, optax.adam(0.1), keys, steps=2, hp={"lr_factor": 1.0})
    with pytest.raises(ValueError, match="learning-rate factor"):  # found by name; none here
        fit(noisy_quadratic, {"x": jnp.zeros((3, 3))}, optax.adam(0.1), keys, steps=2, hp={"lr_factor": scales})


def test_the_step_reaches_every_member_once_per_step_whatever_its_learning_rate():
    """The step is the engine's, not an optimiser counter: with learning-rate factors 1 and 4 both members see
    hp["step"] = 0, 1, 2, ... and a hyperparameter of their own, across chunks."""

    def loss(p, batch, key, hp):
        out, aux = noisy_quadratic(p, batch, key, hp)
        return hp["beta"] * out, {**aux, "seen": hp["step"].astype(jnp.float32), "beta": hp["beta"]}

    opt = build_optimizer(OptimizerConfig(lr=0.02), 40)
    res = fit(loss, {"x": jnp.zeros((2, 3))}, opt, jax.random.split(jax.random.key(0), 2), steps=40, chunk_size=15,
              log_every=1, data=DATA, batch_fn=batch_fn,
              hp={"lr_factor": jnp.asarray([1.0, 4.0]), "beta": jnp.asarray([0.5, 2.0])})
    np.testing.assert_array_equal(res.history["seen"], np.tile(np.arange(40)[:, None], (1, 2)))
    np.testing.assert_array_equal(res.history["beta"][-1], [0.5, 2.0])
    with pytest.raises(ValueError, match="step"):
        fit(loss, {"x": jnp.zeros(3)}, opt, jax.random.key(0), steps=2, hp={"step": 3, "beta": 1.0})


def test_a_batch_of_member_keys_is_used_as_given():
    keys = jax.random.split(jax.random.key(5), 2)
    both = fit(noisy_quadratic, {"x": jnp.zeros((2, 3))}, optax.adam(0.05), keys, steps=50, chunk_size=50,
               data=DATA, batch_fn=batch_fn)
    for i in range(2):
        one = fit(noisy_quadratic, {"x": jnp.zeros(3)}, optax.adam(0.05), keys[i], steps=50, chunk_size=50,
                  data=DATA, batch_fn=batch_fn)
        np.testing.assert_allclose(both.params["x"][i], one.params["x"], rtol=1e-6)


def test_the_global_step_crosses_chunks():
    def tempered(params, batch, key, hp):
        t = jnp.minimum(1.0, (hp["step"] + 1.0) / 40.0)
        loss, aux = noisy_quadratic(params, batch, key, hp)
        return t * loss, {**aux, "t": t, "seen": hp["step"].astype(jnp.float32)}

    full = fit(tempered, {"x": jnp.zeros(3)}, optax.adam(0.05), jax.random.key(0), steps=60, chunk_size=25,
               log_every=1, data=DATA, batch_fn=batch_fn)
    np.testing.assert_array_equal(full.history["seen"], np.arange(60))
    np.testing.assert_allclose(full.history["t"], np.minimum(1.0, (np.arange(60) + 1.0) / 40.0), rtol=1e-6)
    assert full.compiles == 1


def test_history_rows_are_per_member_with_their_labels(tmp_path):
    """history.jsonl holds one row per logged step and member, with what tells the members apart."""
    labels = [{"train.optimizer.lr": 0.1, "seed_index": 0}, {"train.optimizer.lr": 0.4, "seed_index": 0}]
    with Run(tmp_path / "h", quiet=True) as run:
        res = run_fit(steps=20, chunk=10, n=2, run=None, log_every=5,
                      callbacks=[cb.History(run, "quad", labels)])
    rows = [json.loads(line) for line in (tmp_path / "h" / "history.jsonl").read_text().splitlines()]
    assert [(r["step"], r["member"]) for r in rows] == [(s, m) for s in (0, 5, 10, 15, 19) for m in (0, 1)]
    assert rows[1]["train.optimizer.lr"] == 0.4 and rows[1]["fit"] == "quad"
    assert rows[-1]["loss"] == pytest.approx(float(res.history["loss"][-1, 1]), rel=1e-6)
    assert rows[-2]["x0"] == pytest.approx(float(res.history["x0"][-1, 0]), rel=1e-6)


def test_aux_names_may_not_shadow_the_history_columns():
    with pytest.raises(ValueError, match="'step'"):
        fit(lambda p, b, k, hp: (jnp.sum(p**2), {"step": jnp.sum(p)}), jnp.ones(2), optax.sgd(0.1),
            jax.random.key(0), steps=3)


def test_checkpoints_name_their_leaves_and_refuse_a_renamed_or_reshaped_parameter(tmp_path):
    loss = lambda p, batch, key, hp: (jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2), {})
    params = {"w": jnp.ones(3), "b": jnp.ones(2)}
    run = Run(tmp_path / "n", quiet=True)
    fit(loss, params, optax.adam(0.1), jax.random.key(0), steps=20, chunk_size=10, callbacks=to_run(run))
    run.close()
    saved = run.load_checkpoint("fit")
    assert {"params['w']", "params['b']", "opt_state[0].mu['w']", "step"} <= set(saved)
    np.testing.assert_array_equal(saved["params['w']"].shape, (3,))
    for other, needle in (({"w2": jnp.ones(3), "b": jnp.ones(2)}, "has no params['w2'] and holds params['w']"),
                          ({"w": jnp.ones(4), "b": jnp.ones(2)}, "params['w'] is float32[3] but the model's is "
                                                                 "float32[4]")):
        l2 = lambda p, batch, key, hp: (sum(jnp.sum(v ** 2) for v in p.values()), {})
        with Run(tmp_path / "n", resume=True, quiet=True) as again, pytest.raises(ConfigError, match=re.escape(needle)):
            fit(l2, other, optax.adam(0.1), jax.random.key(0), steps=30, chunk_size=10, callbacks=to_run(again))


def test_load_params_gives_back_the_trained_pytree(tmp_path):
    """A run folder's checkpoint gives back the fit's parameters as the pytree it trained: nested dicts and lists,
    leaves with their member axis, values equal to what fit returned."""
    from vlab.engine.checkpoints import unflatten_named
    from vlab.harness.runs import load_params

    params = {"enc": [{"w": jnp.ones((2, 3))}, {"w": jnp.zeros((2, 1))}], "it's": jnp.ones((2,))}
    loss = lambda p, batch, key, hp: (sum(jnp.sum((v - 1.5) ** 2) for v in jax.tree.leaves(p)), {})  # noqa: E731
    with Run(tmp_path / "p", quiet=True) as run:
        res = fit(loss, params, optax.adam(0.1), jax.random.split(jax.random.key(0), 2), steps=12, chunk_size=5,
                  callbacks=to_run(run, name="net"))
    back = load_params(tmp_path / "p")
    assert jax.tree.structure(back) == jax.tree.structure(res.params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(res.params), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert isinstance(back["enc"], list) and back["enc"][1]["w"].shape == (2, 1)
    np.testing.assert_array_equal(unflatten_named({"params": np.ones(3)}, "params"), np.ones(3))
    with pytest.raises(ConfigError, match="expected one of net"):
        load_params(tmp_path / "p", "other")
