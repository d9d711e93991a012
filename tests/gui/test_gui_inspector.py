"""The torch-free Inspector window: open an exported model, score a folder, review, export CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from workbench.core.sample_models import shipped_models


@pytest.fixture
def inspector(qtbot, shown_errors):
    from workbench.gui.inspector import InspectorWindow

    win = InspectorWindow()
    qtbot.addWidget(win)
    win.show()
    return win


def test_sample_is_scored_and_reviewed_with_the_shipped_decisions(inspector, tmp_path: Path, shown_errors):
    model = shipped_models()["washer"]
    inspector.open_sample("washer", wait=True)
    names = {Path(r["path"]).relative_to(Path(r["path"]).parents[2]).as_posix(): r["decision"]
             for r in inspector.rows}
    assert names == {k: d for k, (_, d) in model.expected.items()}
    assert inspector.table.rowCount() == len(model.expected)
    shown = {inspector.table.item(i, 0).text() for i in range(inspector.table.rowCount())}
    assert shown == {k.removeprefix("test/") for k in model.expected}  # crack/000.png, good/000.png
    frame = inspector.viewer.frame
    assert frame is not None and frame.heat is not None  # first row shown with its heat map
    ng_row = next(i for i, r in enumerate(inspector.rows) if r["decision"] == "NG")
    inspector.table.selectRow(ng_row)
    assert "NG" in inspector.verdict.text() and inspector.viewer.frame.region  # defect outlined
    saved = inspector.export_csv(tmp_path / "out.csv")
    with open(saved, newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == len(model.expected)
    assert shown_errors == []


def test_background_scoring_of_a_chosen_folder(inspector, qtbot, wait_worker, tmp_path: Path):
    model = shipped_models()["fabric"]
    assert inspector.open_model(model.export_dir)
    from workbench.package_data import sample_data_dir

    worker = inspector.score_folder(sample_data_dir() / "fabric" / "test" / "good")
    wait_worker(worker)
    assert inspector.rows and all(r["decision"] == "OK" for r in inspector.rows)


def test_a_training_package_is_refused_with_a_clear_message(inspector, shown_errors):
    model = shipped_models()["fabric"]
    assert not inspector.open_model(model.package_dir)
    assert shown_errors and "no exported model" in shown_errors[0][1] and "workbench export" in shown_errors[0][1]


def test_selftest_passes_on_the_shipped_models(qtbot, capsys):
    from workbench.gui.inspector import run_selftest

    assert run_selftest() == 0
    assert "selftest passed" in capsys.readouterr().out
