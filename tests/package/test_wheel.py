"""The built wheel: it holds every config and the built-in experiments inside vlab's namespace (no top-level
``experiments`` package), and, installed into a fresh virtual environment, runs configs by name from an empty folder
and beside a user's own ``experiments`` package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import CONFIGS, ROOT

pytestmark = pytest.mark.slow


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout's files (so nothing built lands in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for f in _tracked_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_bytes((ROOT / f).read_bytes())
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dist),
           str(src)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    (path,) = dist.glob("vlab-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory, wheel) -> Path:
    """A new virtual environment with the wheel installed. Its dependencies (jax, optax, ...) come from this
    environment's site-packages, linked by a .pth file, so pip resolves them without downloading; this
    environment's editable vlab is not visible there (.pth files of a linked folder are not processed)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation",
                          str(wheel)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return venv


def test_the_wheel_holds_every_config_and_no_top_level_experiments(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"vlab"}, tops
    shipped = {Path(n).name for n in names if n.startswith("vlab/configs/") and n.endswith(".yaml")}
    assert shipped == {p.name for p in (CONFIGS).glob("*.yaml")}
    experiments = {Path(n).stem for n in names if n.startswith("vlab/experiments/") and n.endswith(".py")}
    assert experiments == {p.stem for p in (ROOT / "experiments").glob("*.py")}
    modules = {n for n in names if n.startswith("vlab/") and n.endswith(".py")}
    source = {f"vlab/{p.relative_to(ROOT / 'vlab')}" for p in (ROOT / "vlab").rglob("*.py")}
    assert source <= modules, sorted(source - modules)  # every subpackage is listed in pyproject.toml


def _vlab(venv: Path, cwd: Path, *args: str, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VLAB_RUNS")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([str(venv / "bin" / "vlab"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_installed_wheel_runs_a_config_by_name_from_an_empty_folder(fresh_venv, tmp_path):
    where = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", "import vlab; print(vlab.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(fresh_venv) in where and str(ROOT) not in where  # the installed copy, not the checkout
    listing = _vlab(fresh_venv, tmp_path, "list")
    assert listing.returncode == 0, listing.stderr
    assert "kl_fit" in listing.stdout and "gmvae" in listing.stdout
    out = _vlab(fresh_venv, tmp_path, "run", "kl_fit", "--quick", "-q", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing else written where it ran


def test_the_installed_wheel_works_beside_a_user_package_named_experiments(fresh_venv, tmp_path):
    user = tmp_path / "project"
    (user / "experiments").mkdir(parents=True)
    (user / "experiments" / "__init__.py").write_text("")
    (user / "experiments" / "mine.py").write_text("VALUE = 1\n")
    listing = _vlab(fresh_venv, user, "list", pythonpath=str(user))
    assert listing.returncode == 0 and "kl_fit" in listing.stdout, listing.stderr
    out = _vlab(fresh_venv, user, "run", "kl_fit", "--quick", "-q", "train.steps=50", "--out",
                str(tmp_path / "run"), pythonpath=str(user))
    assert out.returncode == 0, out.stderr[-2000:]
