"""The Inspector exports the inspection report of an exported package and the folder it scored:
image-level metrics from the folder names when they give labels, and a report that says it has
no labels otherwise. (tests/test_torch_free.py runs the same report path with torch blocked.)"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from workbench.core.metrics import image_auroc
from workbench.core.report import is_report_file


@pytest.fixture
def inspector(qtbot):
    from workbench.gui.inspector import InspectorWindow

    window = InspectorWindow()
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def _shown(html: str, key: str) -> str:
    return re.search(rf'data-key="{re.escape(key)}" data-value="([^"]*)"', html).group(1)


def test_report_of_the_scored_sample_has_its_decisions_and_metrics(inspector, wait_worker, tmp_path, shown_errors):
    inspector.open_sample("washer", wait=True)
    assert inspector.report_action.isEnabled()
    rows = inspector.rows
    worker = inspector.export_report(tmp_path / "washer.html", pdf=True)
    wait_worker(worker, timeout=120_000)
    assert not shown_errors, shown_errors
    html_path, pdf_path = tmp_path / "washer.html", tmp_path / "washer.pdf"
    assert is_report_file(html_path) and is_report_file(pdf_path)
    html = html_path.read_text(encoding="utf-8")
    for decision in ("OK", "NG"):
        assert int(_shown(html, f"decisions.{decision}")) == sum(r["decision"] == decision for r in rows)
    labels = np.array([Path(r["path"]).parent.name != "good" for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    assert float(_shown(html, "image_auroc")) == image_auroc(labels, scores)
    assert int(_shown(html, "n_defect")) == int(labels.sum())
    assert "no ground-truth masks" in html


def test_report_of_an_unlabelled_folder_says_so(inspector, tmp_path, shown_errors):
    from workbench.package_data import sample_data_dir

    inspector.open_sample("fabric", wait=True)
    inspector.score_folder(sample_data_dir() / "fabric" / "test" / "good", wait=True)
    written = inspector.export_report(tmp_path / "good-only", wait=True)  # suffix added
    assert [p.name for p in written] == ["good-only.html"]
    html = written[0].read_text(encoding="utf-8")
    assert "No labels" in html and _shown(html, "image_auroc") == ""
    assert sum(int(_shown(html, f"decisions.{k}")) for k in ("OK", "REVIEW", "NG", "error")) == len(inspector.rows)
