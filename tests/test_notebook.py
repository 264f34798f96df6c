"""examples/analyse_folder.ipynb runs from top to bottom and shows what it promises."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "analyse_folder.ipynb"


@pytest.mark.timeout(300)
def test_the_folder_notebook_runs_and_plots_label_shares_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPTONE_FOLDER", raising=False)  # its own demo folder
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    data = [out.get("data", {}) for out in outputs]
    texts = [d.get("text/plain", "") for d in data]
    assert any(all(f"part{k}.wav" in t for k in (1, 2, 3)) and "silence" in t for t in texts)  # the shares table
    pngs = [d for d in data if "image/png" in d]
    assert len(pngs) >= 2  # the label-share chart and the result's timeline
    assert any("<table" in d.get("text/html", "") and "data:image/png" in d.get("text/html", "") for d in data)
