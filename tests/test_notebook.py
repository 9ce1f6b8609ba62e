from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

from recommender.exploration import CORNERS, simplex_map

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore_matches.ipynb"


def test_simplex_map_puts_pure_emotions_on_corners_and_uniform_in_centre():
    pure = np.eye(6, dtype=np.float32)
    np.testing.assert_allclose(simplex_map(pure), CORNERS, atol=1e-6)
    np.testing.assert_allclose(simplex_map(np.full((1, 6), 1 / 6)), [[0.0, 0.0]], atol=1e-6)


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.slow
def test_notebook_executes_on_the_bundled_model(monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv("RECOMMENDER_MODEL", raising=False)
    monkeypatch.delenv("RECOMMENDER_INDEX", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    tables = [o["data"]["text/plain"] for o in outputs if o.output_type == "execute_result"]
    assert any("text_emotion" in table for table in tables)
