"""``vlab show`` and ``vlab run CONFIG --help``: every key of a config explained; ``--yaml`` round-trips; bad input
is one line and exit status 2."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import config

from vlab.cli.main import main
from vlab.harness.loading import load_config

KL = config("kl_fit")


def _n_inits_field():
    cls, _ = load_config(KL)
    return next(f for f in dataclasses.fields(cls.Config) if f.name == "n_inits")


def _row(out: str, key: str) -> tuple[str, list[str], str]:
    """The mark, the cells before the help and the help text (its wrapped lines joined) of the row of ``key``."""
    lines = out.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["key", "type"])
    at = header.index("help")
    i = next(i for i, line in enumerate(lines) if line[2:].split(" ", 1)[0] == key)
    block = [lines[i]]
    for line in lines[i + 1:]:
        if not line.strip() or line[:at].strip():
            break
        block.append(line)
    help_text = " ".join(line[at:].strip() for line in block)
    return lines[i][0], lines[i][2:at].split(), help_text


def test_show_by_path_explains_n_inits(capsys):
    assert main(["show", KL]) == 0
    out = capsys.readouterr().out
    cls, _ = load_config(KL)
    assert out.splitlines()[0].startswith(f"kl_fit: {cls.description}") and cls.source in out.splitlines()[0]
    f = _n_inits_field()
    mark, cells, help_text = _row(out, "n_inits")
    assert cells[:4] == ["n_inits", "int", "64", str(f.default)]
    assert cells[4:] == [">", str(f.metadata["gt"])]
    assert help_text == f.metadata["help"]
    assert mark == " "
    assert "train.optimizer" in out and "(top level)" in out
    assert max(len(line) for line in out.splitlines()) <= 120


def test_show_by_name(capsys):
    assert main(["show", "vae"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vae: ") and "z_dim" in out and "objective" in out


def test_an_override_changes_the_value_and_marks_it(capsys):
    assert main(["show", KL, "n_inits=3", "lr=0.05"]) == 0
    out = capsys.readouterr().out
    mark, cells, _ = _row(out, "n_inits")
    assert mark == "*" and cells[2] == "3"
    mark, cells, _ = _row(out, "lr")
    assert mark == "*" and cells[2] == "0.05"
    assert "overrides: n_inits=3 lr=0.05" in out


@pytest.mark.parametrize("argv,needle", [
    (["show", KL, "n_inits=0"], "n_inits"),
    (["show", KL, "n_init=3"], "unknown key 'n_init'"),
    (["show", KL, "train.steps"], "malformed"),
    (["show", "no_such_config"], "no_such_config"),
    (["run", KL, "n_inits=-1", "--help"], "n_inits"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], captured.err
    assert captured.out == ""


def test_yaml_round_trips_through_load_config(tmp_path, capsys):
    assert main(["show", KL, "n_inits=3", "estimator.kind=mc", "--yaml"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("experiment: kl_fit\n")
    path = tmp_path / "resolved.yaml"
    path.write_text(text)
    assert load_config(path)[1] == load_config(KL, ["n_inits=3", "estimator.kind=mc"])[1]


def test_run_config_help_prints_usage_and_the_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VLAB_RUNS", str(tmp_path / "runs"))
    assert main(["run", KL, "--help", "n_inits=5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vlab run")
    mark, cells, help_text = _row(out, "n_inits")
    assert mark == "*" and cells[2] == "5" and help_text == _n_inits_field().metadata["help"]
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_run_help_without_a_config_is_argparse_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "-h"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vlab run") and "--sweep" in out and "--resume" in out
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "vlab show kl_fit" in out and "compare" in out
