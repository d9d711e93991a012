"""The Sweep action of the Method & Training step: combinations run in worker processes and
each finished model lands in the workspace's model table."""

from __future__ import annotations

import pytest

from workbench.gui.widgets.sweep_dialog import SweepDialog

pytestmark = pytest.mark.cluster


def test_sweep_dialog_checks_its_input(imported) -> None:
    launcher_entries = imported.session.workspace.datasets()
    dialog = SweepDialog(launcher_entries, imported.session.dataset_entry)
    dialog.params.setPlainText("image_size=64,96\nnot a parameter line")
    dialog._accept_if_valid()
    assert "NAME=V1,V2" in dialog.error.text() and dialog.result() == 0
    dialog.params.setPlainText("image_size=64,96")
    assert dialog.grid() == {"image_size": ["64", "96"]}
    assert [e.id for e in dialog.chosen_datasets()] == [imported.session.dataset_entry.id]


def test_sweep_adds_every_finished_combination_to_the_model_table(qtbot, imported, wait_worker, shown_errors,
                                                                   monkeypatch) -> None:
    panel = imported.training_panel
    imported.go_to_step(1)

    def choose(dialog: SweepDialog) -> int:  # what the user ticks in the dialog
        for i in range(dialog.methods.count()):
            item = dialog.methods.item(i)
            item.setCheckState(item.checkState().Checked if item.data(0x0100) in ("padim", "dfm")
                               else item.checkState().Unchecked)
        for i in range(dialog.datasets.count()):
            dialog.datasets.item(i).setCheckState(dialog.datasets.item(i).checkState().Checked)
        dialog.params.setPlainText("image_size=64")
        dialog.workers.setValue(2)
        return SweepDialog.DialogCode.Accepted

    monkeypatch.setattr(SweepDialog, "exec", choose)
    worker = panel.open_sweep_dialog()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    wait_worker(worker)
    assert shown_errors == []
    workspace = imported.session.workspace
    models = workspace.models()
    assert sorted((workspace.dataset(m.dataset_id).category, m.method) for m in models) == [
        ("gadget", "dfm"), ("gadget", "padim"), ("widget", "dfm"), ("widget", "padim")]
    assert all(m.exists and m.metrics["image_auroc"] is not None for m in models)
    assert all("sweep" in m.name for m in models)
    panel.sweeps._register(workspace, next(workspace.models_dir.glob("sweep-*")),
                           {e.category: e for e in workspace.datasets()})
    assert len(workspace.models()) == 4  # registering again adds nothing
