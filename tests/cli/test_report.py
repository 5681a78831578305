"""The reproduce index opens from disk in a real browser; compare and figure formats work."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helpers import CONFIGS, ROOT

from vlab.cli.main import main
from vlab.cli.report import run_command

KL = CONFIGS / "kl_fit.yaml"
FAST = ["n_inits=8", "train.steps=300", "train.chunk_size=100"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repro")
    cdir = tmp / "configs"
    cdir.mkdir()
    (cdir / "kl_fit.yaml").write_text(KL.read_text())
    (cdir / "kl_fit_mc.yaml").write_text(KL.read_text().replace("kind: quadrature", "kind: mc"))
    out = tmp / "out"
    assert main(["reproduce", "--quick", "--configs", str(cdir), "--out", str(out), "-q"]) == 0
    return out


def test_index_lists_every_section_figure_and_check(index):
    html = (index / "index.html").read_text()
    for name in ("kl_fit", "kl_fit_mc"):
        assert f"id='{name}'" in html
        for fig in ("fits.png", "landscape.png", "loss.png"):
            assert f"{name}/{fig}" in html and (index / name / fig).exists()
    assert "class='ok'" in html and "vlab run" in html
    assert "http://" not in html and "https://" not in html  # opens from disk, no network


def test_index_shows_each_config_as_a_runnable_quick_command(index):
    md, html = (index / "index.md").read_text(), (index / "index.html").read_text()
    configs = index.parent / "configs"
    for name in ("kl_fit", "kl_fit_mc"):
        command = f"vlab run {configs / name}.yaml --quick"
        assert f"`{command}`" in md and f"<code>{command}</code>" in html
    assert "overrides" not in md and "overrides" not in html


def test_run_command_adds_quick_only_for_a_quick_reproduce():
    assert run_command("configs/kl_fit.yaml", quick=False) == "vlab run configs/kl_fit.yaml"
    assert run_command("configs/kl_fit.yaml", quick=True) == "vlab run configs/kl_fit.yaml --quick"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test installs it as root)")
def test_index_renders_in_headless_chromium(index, tmp_path):
    """Every <img> finished loading with a non-zero size, and every section is in the DOM."""
    probe = index / "probe.html"
    page = (index / "index.html").read_text()
    script = (
        "<script>window.addEventListener('load', () => {"
        "const imgs = [...document.images];"
        "const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;"
        "const sections = document.querySelectorAll('section').length;"
        "document.title = `IMAGES ${ok}/${imgs.length} SECTIONS ${sections}`;"
        "});</script>"
    )
    probe.write_text(page.replace("</body>", script + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert "IMAGES 6/6 SECTIONS 2" in dom.stdout, dom.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "reproduce_index.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1200,1600", f"--screenshot={shot}",
                    (index / "index.html").as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_compare_prints_config_and_metric_differences(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(KL), *FAST, "-q", "--out", str(a)]) == 0
    assert main(["run", str(KL), *FAST, "seed=3", "-q", "--out", str(b), "figures.format=[png,pdf]"]) == 0
    assert (b / "fits.pdf").exists() and not (a / "fits.pdf").exists()
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "seed" in out and "figures.format" in out and "exclusive" in out
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert "not a complete run folder" in capsys.readouterr().err


def test_same_config_and_seed_reproduce_metrics_exactly(tmp_path):
    for name in ("x", "y"):
        assert main(["run", str(KL), *FAST, "-q", "--out", str(tmp_path / name)]) == 0
    load = lambda n: {k: v for k, v in json.loads((tmp_path / n / "metrics.json").read_text()).items() if k != "timing"}
    assert load("x") == load("y")
    env = json.loads((tmp_path / "x" / "run.json").read_text())["environment"]
    for key in ("vlab", "jax", "jaxlib", "optax", "devices", "git"):
        assert key in env
