"""docs/notebooks/tour.ipynb runs top to bottom in a real Jupyter kernel, its figures shown inline."""

from __future__ import annotations

import pytest
from helpers import ROOT

NOTEBOOK = ROOT / "docs" / "notebooks" / "tour.ipynb"


def test_the_tour_notebook_runs_in_a_jupyter_kernel_and_shows_its_figures(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    shown = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kinds = {k for out in cell.outputs for k in out.get("data", {})}
        shown[cell.source.splitlines()[0]] = kinds
    assert "image/png" in shown['kl.figures["fits"]']  # a Result's figure, displayed as a cell's value
    assert "image/png" in shown['vae.figures["latents_kl_curves"]']
    assert "image/png" in next(v for k, v in shown.items() if k.startswith("flow = vlab.run"))
    assert "image/png" in next(v for k, v in shown.items() if k.startswith("sweep = df["))  # the comparison
    assert "text/html" in next(v for k, v in shown.items() if k.startswith("df = vlab.load_runs"))  # a DataFrame
    kl_cell = next(v for k, v in shown.items() if k.startswith("kl = vlab.run"))
    assert "application/vnd.jupyter.widget-view+json" in kl_cell  # tqdm's notebook bar, not plain lines
