"""Review's evidence box: click the heat map -> nearest normal patch; "Add OK images to model"."""

from __future__ import annotations

import json

from PySide6.QtCore import QEvent

from workbench.core.jobs import CancelToken
from workbench.gui.pipelines import train_evaluate_save

from test_gui_review_panel import Env, send_mouse


def _trained_env(qtbot, tmp_path, tiny_root, wait_worker, method="patchcore"):
    env = Env(qtbot, tmp_path / "ws", tiny_root / "widget" / "..")
    out = env.workspace.new_model_dir(method)
    outcome = train_evaluate_save(env.dataset, method, {"image_size": 64}, out, cancel=CancelToken())
    entry = env.workspace.add_model(env.entry.id, method, out, outcome.params, outcome.metrics)
    env.session.set_active_model(entry)
    wait_worker(env.panel.pred_worker)
    env.wait_frame()
    return env, entry


def test_click_on_heat_map_shows_the_nearest_normal_patch(qtbot, tmp_path, tiny_root, wait_worker):
    env, entry = _trained_env(qtbot, tmp_path, tiny_root, wait_worker)
    try:
        box, controller = env.panel.evidence_box, env.panel.evidence
        assert box.worst_button.isEnabled() and box.add_ok_button.isEnabled()
        canvas = env.panel.viewer.main
        env.panel.viewer.fit()
        centre = canvas.mapFromScene(env.panel.frame.shape[1] / 2, env.panel.frame.shape[0] / 2)
        send_mouse(canvas.viewport(), QEvent.Type.MouseButtonPress, centre)
        send_mouse(canvas.viewport(), QEvent.Type.MouseButtonRelease, centre)
        assert controller.worker is not None, "a click on the image starts the evidence job"
        wait_worker(controller.worker)
        assert "given location" in box.caption.text() and "distance" in box.caption.text()
        assert box.test_view.pixmap() is not None and not box.test_view.pixmap().isNull()
        assert box.normal_view.pixmap() is not None and not box.normal_view.pixmap().isNull()
        # the worst spot, with the model loaded by the first job reused
        wait_worker(controller.explain_at(None, None))
        assert "highest-scoring patch" in box.caption.text()
    finally:
        env.close()


def test_add_ok_images_makes_a_new_model_version(qtbot, tmp_path, tiny_root, wait_worker):
    env, entry = _trained_env(qtbot, tmp_path, tiny_root, wait_worker)
    try:
        panel = env.panel
        goods = [it for it in panel.model.items if it.record.split == "test" and it.record.is_good][:2]
        for it in goods:
            assert panel.select_key(it.key)
            panel.set_verdict("OK")
        assert sorted(p.name for p in panel.evidence.ok_paths()) == sorted(it.record.path.name for it in goods)
        panel.set_filters(verdict="NG")  # the list's filters select the images: none shown is OK
        assert panel.evidence.ok_paths() == []
        panel.set_filters(verdict=None)
        worker = panel.evidence.add_ok_images(confirm=False)
        wait_worker(worker)
        assert worker.state == "finished", worker.error
        meta = json.loads((entry.path / "model.json").read_text())
        assert meta["package_version"] == 2 and meta["calibration_check"]["needed"]
        assert (entry.path / "versions" / "v1" / "model.json").is_file()
        assert "version 2" in panel.evidence_box.caption.text()
        wait_worker(panel.pred_worker)  # the Review scores are reloaded from the new version
        assert panel.predictions is not None
    finally:
        env.close()


def test_methods_without_evidence_say_why(qtbot, tmp_path, tiny_root, wait_worker):
    env, _ = _trained_env(qtbot, tmp_path, tiny_root, wait_worker, method="padim")
    try:
        box = env.panel.evidence_box
        assert not box.worst_button.isEnabled() and box.add_ok_button.isEnabled()
        assert "PatchCore or SPADE" in box.caption.text()
        assert env.panel.evidence.explain_at(3, 3) is None
    finally:
        env.close()


def test_model_table_shows_the_run_record(qtbot, tmp_path, tiny_root, wait_worker):
    from PySide6.QtCore import Qt

    from workbench.gui.panels.models_box import ModelsBox
    from workbench.gui.qtmodels.model_table import ModelTableModel

    env, entry = _trained_env(qtbot, tmp_path, tiny_root, wait_worker)
    try:
        table = ModelTableModel()
        table.set_entries([entry])
        tip = table.data(table.index(0, 1), Qt.ItemDataRole.ToolTipRole)
        assert "Run record:" in tip and "seed 0" in tip and "torch" in tip
        box = ModelsBox(env.session)
        qtbot.addWidget(box)
        dialog = box.show_run_records(modal=False)
        qtbot.addWidget(dialog)
        assert dialog.list.count() == 2  # the training and the evaluation after it
        assert '"kind": "evaluate"' in dialog.text.toPlainText()
        from workbench.core.run_record import sync_to_workspace

        assert sync_to_workspace(env.workspace, entry.id, entry.path) == 2  # what the training panel does
        assert sync_to_workspace(env.workspace, entry.id, entry.path) == 0  # no duplicates
        assert [r["kind"] for r in env.workspace.run_records(entry.id)] == ["train", "evaluate"]
    finally:
        env.close()
