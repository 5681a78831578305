"""The VAE's model config resolves its names once: to an activation function and an observation model."""

from __future__ import annotations

import typing

import jax
import jax.numpy as jnp
import pytest
from helpers import config

from vlab import nn
from vlab.cli.main import main
from vlab.distributions import likelihoods
from vlab.harness.model_config import LIKELIHOODS, ModelConfig, spec_of
from vlab.models.vae import VAESpec, decoder_mean, init_vae

VAE = config("vae")


def _names(field: str) -> set[str]:
    return set(typing.get_args(typing.get_type_hints(ModelConfig)[field]))


def test_every_name_the_config_accepts_resolves():
    from vlab.experiments.vae import KL_ESTIMATORS, ObjectiveConfig

    assert _names("likelihood") == set(LIKELIHOODS)
    assert _names("activation") <= set(nn.ACTIVATIONS)
    assert set(KL_ESTIMATORS) == set(typing.get_args(typing.get_type_hints(ObjectiveConfig)["kl_estimator"]))


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
def test_spec_of_holds_the_objects_the_names_stand_for(likelihood):
    cfg = ModelConfig(z_dim=3, hidden=[5, 4], activation="tanh", likelihood=likelihood, sigma_x=0.5)
    s = spec_of(cfg, 7)
    assert s == VAESpec(x_dim=7, z_dim=3, hidden=(5, 4), activation=jnp.tanh, likelihood=LIKELIHOODS[likelihood],
                        sigma_x=0.5)
    assert isinstance(s.likelihood, likelihoods.Likelihood) and s.activation is nn.ACTIVATIONS["tanh"]
    params = init_vae(jax.random.key(0), s)
    assert params["dec"][-1]["w"].shape == (5, 14 if likelihood == "gaussian_decoder" else 7)
    assert ("log_sigma_x" in params) == (likelihood == "gaussian_learned")


def test_the_spec_is_a_static_argument():
    s1, s2 = (spec_of(ModelConfig(likelihood="gaussian_fixed"), 4) for _ in range(2))
    assert s1 == s2 and hash(s1) == hash(s2)
    traces = []

    @jax.jit
    def mean(params, z):
        return decoder_mean(params, s1, z)

    f = jax.jit(lambda p, z, s: (traces.append(1), decoder_mean(p, s, z))[1], static_argnames="s")
    params = init_vae(jax.random.key(0), s1)
    z = jnp.zeros((2, s1.z_dim))
    f(params, z, s=s1)
    f(params, z, s=s2)  # an equal spec: the compiled program is reused
    assert len(traces) == 1
    assert jnp.allclose(f(params, z, s=s2), mean(params, z))


def test_an_unknown_likelihood_is_a_config_error(tmp_path, capsys):
    code = main(["run", VAE, "model.likelihood=poisson", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "model.likelihood" in err[-1]
