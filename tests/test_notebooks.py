"""Every notebook in notebooks/ runs top to bottom on its default (small) settings; a failing cell
fails the test. Notebooks are committed with their outputs cleared."""

import json
from pathlib import Path

import pytest

from slaws import datasets
from slaws.data import DataError

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# The registered datasets each notebook reads; without a local copy it is skipped, not downloaded.
NEEDS = {
    "01_chinchilla_forecast": ["epoch-chinchilla"],
    "02_planning_a_distillation": [],
    "03_benchmarking_fitting_methods": ["gadre-overtrain", "porian-isoflop"],
    "04_huge_grids": ["epoch-chinchilla"],
}


def test_every_notebook_is_listed_and_committed_without_outputs():
    assert [p.stem for p in NOTEBOOKS] == sorted(NEEDS)
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert cells and cells[0]["cell_type"] == "markdown", path.name
        for cell in cells:
            assert not cell.get("outputs") and cell.get("execution_count") is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for name in NEEDS[path.stem]:
        try:
            datasets.locate(name, download=False)
        except DataError:
            pytest.skip(f"{name} not under SLAWS_DATA_DIR (CI sets it to ../shared/data)")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
