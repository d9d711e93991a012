"""Export step: the exported package decides as the torch model does (onnxruntime parity run
in the panel), a chosen calibration travels into the package, labels and the report are
written, and the step fits a 1366x768 laptop screen."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from workbench.core.calibration import calibrate, save_calibration
from workbench.core.calibration.policy import load_policy


def _export_step(qtbot, win):
    assert win.go_to_step(4)
    assert win.current_step() == "export"
    panel = win.export_panel
    qtbot.waitUntil(lambda: panel.model() is not None, timeout=10_000)
    return panel


def test_export_step_package_parity_equals_torch(qtbot, sample_window, wait_worker, tmp_path, shown_errors):
    win = sample_window
    model_dir = win.session.active_model.path
    from workbench.core.predictions import evaluation_for

    evaluation = evaluation_for(model_dir, win.session.dataset)
    save_calibration(model_dir, calibrate(evaluation, "max_f1", name="line-1"), activate=False)
    win.session.notify_models_changed()
    panel = _export_step(qtbot, win)
    assert panel.model().path == model_dir
    names = [panel.calibration_combo.itemData(i) for i in range(panel.calibration_combo.count())]
    assert "line-1" in names
    panel.calibration_combo.setCurrentIndex(names.index("line-1"))
    assert not panel.parity_button.isEnabled()  # nothing exported yet

    out = tmp_path / "export"
    wait_worker(panel.export_package(out, zip_path=tmp_path / "export.zip"))
    assert not shown_errors, shown_errors
    assert panel.last_export is not None and (out / "model.onnx").is_file()
    exported_policy = load_policy(out)
    assert exported_policy.ng_threshold == pytest.approx(
        json.loads((model_dir / "model.json").read_text())["calibrations"]["line-1"]["image_threshold"])
    with zipfile.ZipFile(tmp_path / "export.zip") as zf:
        assert {"export/model.json", "export/model.onnx"} <= set(zf.namelist())

    assert panel.parity_button.isEnabled()
    wait_worker(panel.run_parity(6), timeout=120_000)
    assert not shown_errors, shown_errors
    result = panel.parity
    assert result is not None and len(result.paths) == 6
    # the package's onnxruntime decisions equal the torch ones, both decided by the exported policy
    assert result.onnx_decisions == result.torch_decisions
    assert set(result.torch_decisions) <= {"OK", "REVIEW", "NG"}
    assert result.max_map_difference < 1e-3 and result.max_score_difference < 1e-3
    np.testing.assert_allclose(result.onnx_scores, result.torch_scores, rtol=1e-3, atol=1e-4)
    assert "PASS" in panel.parity_label.text()
    assert panel.parity_table.rowCount() == 6


def test_export_step_labels_and_report(qtbot, sample_window, wait_worker, tmp_path, shown_errors):
    from workbench.core.report import is_report_file

    panel = _export_step(qtbot, sample_window)
    wait_worker(panel.export_labels("coco", tmp_path / "labels.json"))
    coco = json.loads((tmp_path / "labels.json").read_text())
    assert len(coco["images"]) == len(sample_window.session.dataset.records)
    wait_worker(panel.export_labels("mvtec", tmp_path / "mvtec"))
    assert (tmp_path / "mvtec" / "test").is_dir()
    html = tmp_path / "report.html"
    wait_worker(panel.write_report(html, pdf=True), timeout=120_000)
    assert not shown_errors, shown_errors
    assert is_report_file(html) and is_report_file(tmp_path / "report.pdf")
    assert "report.pdf" in panel.report_label.text()
    # a file that is not a report is refused (error dialog) and left alone
    notes = tmp_path / "notes.html"
    notes.write_text("mine")
    wait_worker(panel.write_report(notes, pdf=False))
    assert shown_errors and "not a workbench report" in shown_errors[-1][1]
    assert notes.read_text() == "mine"


def test_export_step_fits_a_laptop_screen(qtbot, styled, sample_window):
    from test_gui_laptop_layout import TITLE_BAR, layout_problems

    win = sample_window
    win.resize(1366, 768 - TITLE_BAR)
    _export_step(qtbot, win)
    qtbot.wait(50)
    problems, checked = layout_problems(win)
    assert checked >= 10 and not problems, problems
    act = win.act_export
    assert act in win.menuBar().actions()[0].menu().actions()
    win.go_to_step(0)
    act.trigger()
    assert win.current_step() == "export"
