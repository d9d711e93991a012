"""Dataset step: "Audit training images" runs in the background; ticks are stored in the workspace
and the next training skips those images."""

from __future__ import annotations

from PySide6.QtCore import Qt

import workbench.gui.panels.training_panel as training_panel
from workbench.gui.widgets.audit_list import EXCLUDE_COL

AUDIT_PARAMS = {"image_size": 64, "coreset_ratio": 0.1, "batch_size": 8}


def test_audit_lists_every_training_image_and_ticks_exclude_them(qtbot, imported, wait_worker, shown_errors,
                                                                 monkeypatch):
    panel = imported.dataset_panel
    assert panel.audit_button.isEnabled()
    session = imported.session
    dialog = panel.open_audit(AUDIT_PARAMS)
    assert dialog is not None and dialog.isVisible()
    worker = dialog.worker
    assert worker.running and worker in session.jobs.workers  # a background job of the app's runner
    wait_worker(worker, timeout=240_000)
    assert worker.state == "finished", shown_errors
    table, result = dialog.list.table, dialog.list.result
    n_train = len(session.dataset.train)
    assert table.rowCount() == n_train == len(result.entries)
    scores = [e.score for e in result.entries]
    assert scores == sorted(scores, reverse=True)  # most suspicious first
    assert not table.item(0, 0).icon().isNull()  # heat-map thumbnail from the overlay file
    assert (session.workspace.path / "audits" / f"dataset-{session.dataset_entry.id}" / "audit.csv").is_file()

    top = result.entries[0].path
    table.item(0, EXCLUDE_COL).setCheckState(Qt.CheckState.Checked)
    assert session.workspace.excluded_images(session.dataset_entry.id) == [top]
    dialog.list.include_all.click()
    assert session.workspace.excluded_images(session.dataset_entry.id) == []
    table.item(1, EXCLUDE_COL).setCheckState(Qt.CheckState.Checked)
    second = result.entries[1].path
    assert session.workspace.excluded_images(session.dataset_entry.id) == [second]

    seen = {}
    original = training_panel.train_evaluate_save

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(training_panel, "train_evaluate_save", spy)
    imported.go_to_step(1)
    imported.training_panel.select_method("padim")
    imported.training_panel.form().set_values({"image_size": 64})
    wait_worker(imported.training_panel.start_training(), timeout=240_000)
    assert seen["excluded"] == [second]
    assert "1 excluded image(s) skipped" in imported.training_panel.progress.log.toPlainText()


def test_audit_can_be_cancelled(qtbot, imported, wait_worker):
    panel = imported.dataset_panel
    dialog = panel.open_audit(AUDIT_PARAMS)
    dialog.cancel_button.click()
    wait_worker(dialog.worker, timeout=120_000)
    assert dialog.worker.state == "cancelled"
    assert dialog.list.result is None and "cancelled" in dialog.stage.text()
    assert dialog.run_button.isEnabled()
