"""Dataset step: import through the panel (worker), report, grid, filters, preview, switching."""

from __future__ import annotations

from PySide6.QtCore import Qt

from workbench.gui.qtmodels.roles import ObjectRole


def test_import_through_panel_fills_models_and_report(qtbot, ws_window, tiny_root, wait_worker, shown_errors):
    panel = ws_window.dataset_panel
    box = panel.import_box
    box.root_edit.setText(str(tiny_root))
    box.inspect_root(str(tiny_root))
    assert "mvtec" in box.detected.text()
    assert [box.category_combo.itemData(i) for i in range(box.category_combo.count())][1:] == ["gadget", "widget"]

    box.category_combo.setCurrentIndex(0)  # "All categories"
    with qtbot.waitSignal(box.importRequested):
        box.import_button.click()
    worker = panel.import_worker
    assert not box.import_button.isEnabled()  # one import at a time
    with qtbot.waitSignal(ws_window.session.datasetChanged, timeout=30_000):
        pass
    wait_worker(worker)
    assert shown_errors == []
    names = [panel.datasets_model.index(r).data() for r in range(panel.datasets_model.rowCount())]
    assert names == ["data/gadget", "data/widget"]
    assert [e.category for e in ws_window.session.workspace.datasets()] == ["gadget", "widget"]
    assert panel.images_model.rowCount() == 8 + 3 + 3
    assert "Layout: mvtec" in panel.report_text.toPlainText()
    assert "train" in panel.report_text.toPlainText()
    counts = panel.counts_model
    assert counts.count("good", "train") == 8 and counts.count("scratch", "test") == 3
    assert box.import_button.isEnabled()

    panel.class_combo.setCurrentIndex(panel.class_combo.findData("scratch"))
    assert panel.proxy.rowCount() == 3
    assert panel.count_label.text() == "3 of 14 images"

    # Selecting a defect image shows it large with its mask outlined.
    panel.grid.setCurrentIndex(panel.proxy.index(0, 0))
    qtbot.waitUntil(panel.preview.has_image, timeout=10_000)
    assert "mask outlined" in panel.caption.text() and "64×64" in panel.caption.text()


def test_switch_dataset_and_reimport_is_idempotent(qtbot, imported, tiny_root, wait_worker):
    panel = imported.dataset_panel
    session = imported.session
    first = session.dataset_entry
    other_row = 1 - panel.datasets_model.row_of(first.id)
    with qtbot.waitSignal(session.datasetChanged, timeout=30_000):
        panel.dataset_view.setCurrentIndex(panel.datasets_model.index(other_row))
    assert session.dataset_entry.id != first.id
    assert panel.dataset_view.currentIndex().data(ObjectRole).id == session.dataset_entry.id
    worker = panel.import_dataset(tiny_root, categories=["widget"])
    wait_worker(worker)
    assert len(session.workspace.datasets()) == 2  # the same folder is never registered twice


def test_import_error_is_shown_not_raised(qtbot, ws_window, tmp_path, wait_worker, shown_errors):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ws_window.dataset_panel.import_dataset(empty) is None
    assert shown_errors and "empty" in shown_errors[0][1]
    broken = tmp_path / "broken" / "good"
    broken.mkdir(parents=True)
    (broken / "x.png").write_bytes(b"not a png")
    worker = ws_window.dataset_panel.import_dataset(broken.parent, layout="folder", categories=None)
    if worker is not None:
        wait_worker(worker)
    assert len(shown_errors) == 2
    assert ws_window.session.workspace.datasets() == []


def test_sample_workspace_imports_every_category_in_one_click(qtbot, window, app_dirs, wait_worker, shown_errors):
    worker = window.open_sample_workspace()
    wait_worker(worker)
    qtbot.waitUntil(lambda: window.session.dataset is not None, timeout=30_000)
    workspace = window.session.workspace
    assert workspace.path == app_dirs / "sample"
    assert sorted(e.category for e in workspace.datasets()) == ["gadget", "widget"]
    assert window.current_step() == "dataset"
    assert window.open_sample_workspace() is None  # second click: nothing left to import
    assert len(window.session.workspace.datasets()) == 2
    assert shown_errors == []
    tip = window.navigator.item(4).toolTip()  # Export has its panel since #17: enabled like the others
    assert tip == "Export (Ctrl+5)" and window.navigator.item(4).flags() & Qt.ItemFlag.ItemIsEnabled


def test_import_shipped_sample_data_through_panel(qtbot, ws_window, wait_worker, shown_errors):
    from workbench.gui.sample import sample_data_root

    root = sample_data_root()
    if not root.is_dir():
        import pytest

        pytest.skip("sample_data/ is not generated in this checkout")
    from workbench.core.data import list_categories

    categories = list_categories(root)
    panel = ws_window.dataset_panel
    worker = panel.import_dataset(root, categories=categories[:1])
    wait_worker(worker)
    qtbot.waitUntil(lambda: ws_window.session.dataset is not None, timeout=30_000)
    dataset = ws_window.session.dataset
    assert shown_errors == []
    assert panel.datasets_model.rowCount() == 1
    assert panel.images_model.rowCount() == len(dataset.records) > 0
    assert panel.report_text.toPlainText() == dataset.report.summary()
    assert panel.counts_model.count("Total", "Total") == len(dataset.records)
    assert panel.counts_model.count("good", "train") == len(dataset.train)
