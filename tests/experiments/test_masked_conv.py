"""Masked convolutions: masks, convolution without flipping, receptive fields by jax.grad and by hand."""

from __future__ import annotations

import itertools
import json

import jax.numpy as jnp
import numpy as np
import pytest

from vlab.cli.main import main
from vlab.models import masked_conv as mc

# The seed's four cases worked out by hand (1-indexed row-column labels), for output pixel 33.
ROW1 = ["11", "12", "13", "14", "15"]
EXPECTED = {
    "AA": ROW1 + ["21", "22", "23", "31"],
    "AB": ROW1 + ["21", "22", "23", "24", "31", "32"],
    "BA": ROW1 + ["21", "22", "23", "24", "31", "32"],
    "BB": ROW1 + ["21", "22", "23", "24", "31", "32", "33"],
}


def test_masks():
    np.testing.assert_array_equal(np.asarray(mc.pixelcnn_mask("A")), [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(mc.pixelcnn_mask("B")), [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        mc.pixelcnn_mask("C")


def test_conv_is_cross_correlation_without_flip():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(5, 5)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3)), jnp.float32)
    xp = np.pad(np.asarray(x), 1)
    kn = np.asarray(k)
    ref = np.array([[np.sum(kn * xp[i:i + 3, j:j + 3]) for j in range(5)] for i in range(5)])
    np.testing.assert_allclose(np.asarray(mc.conv2d(x, k)), ref, atol=1e-5)
    flipped = np.array([[np.sum(kn[::-1, ::-1] * xp[i:i + 3, j:j + 3]) for j in range(5)] for i in range(5)])
    assert np.max(np.abs(np.asarray(mc.conv2d(x, k)) - flipped)) > 1e-2


@pytest.mark.parametrize("case", ["AA", "AB", "BA", "BB"])
def test_seed_cases(case):
    masks = [mc.pixelcnn_mask(k) for k in case]
    field = mc.receptive_field(masks, (5, 5), (2, 2))
    got = [f"{i + 1}{j + 1}" for i, j in zip(*np.nonzero(field), strict=True)]
    assert got == EXPECTED[case]
    walk = mc.receptive_field_by_propagation([np.asarray(m) for m in masks], (5, 5), (2, 2))
    np.testing.assert_array_equal(field, walk)


def test_grad_field_matches_walk_on_every_pixel_and_depth():
    for depth in (1, 3):
        for combo in itertools.product("AB", repeat=depth):
            masks = [mc.pixelcnn_mask(k) for k in combo]
            for pixel in [(0, 0), (4, 4), (1, 3)]:
                a = mc.receptive_field(masks, (6, 6), pixel)
                b = mc.receptive_field_by_propagation([np.asarray(m) for m in masks], (6, 6), pixel)
                np.testing.assert_array_equal(a, b)


def test_a_dependence_really_changes_the_output():
    # perturbing a pixel outside the field leaves the output unchanged; inside it changes it
    masks = [mc.pixelcnn_mask("A"), mc.pixelcnn_mask("B")]
    rng = np.random.default_rng(3)
    kernels = [jnp.asarray(rng.uniform(0.5, 1.0, (3, 3)), jnp.float32) for _ in range(2)]
    x = jnp.asarray(rng.normal(size=(5, 5)), jnp.float32)
    y0 = mc.masked_network(x, kernels, masks)[2, 2]
    field = mc.receptive_field(masks, (5, 5), (2, 2))
    for i, j in itertools.product(range(5), range(5)):
        y1 = mc.masked_network(x.at[i, j].add(1.0), kernels, masks)[2, 2]
        assert (abs(float(y1 - y0)) > 1e-6) == bool(field[i, j])


def test_quick_config_end_to_end(quick):
    path = quick("masked_conv")
    m = json.loads((path / "metrics.json").read_text())
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    for case, labels in EXPECTED.items():
        assert [f"{a}{b}" for a, b in m[case]["receptive_field"]] == labels
    assert m["AA"]["blind_spot"] == [[2, 4], [2, 5], [3, 2]]
    assert (path / "masked_conv.png").exists()


BAD = ["kernel=4", "pixel=[6,1]", "pixel=[3]", "cases=[AC]", "cases=[]", "size=0"]


@pytest.mark.parametrize("over", BAD)
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/masked_conv.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]
