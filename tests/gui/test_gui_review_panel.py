"""Review panel: overlay colours, mask editing, undo/redo, persistence, keyboard-only review,
filters, synced side-by-side view, and loading real predictions of a tiny trained model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtWidgets import QApplication

from workbench.core.data import load_dataset, read_mask
from workbench.core.evaluation import evaluate_predictions
from workbench.core.labels import dataset_labels_dir, load_mask, mask_file, paint_stroke, reviewed_records
from workbench.core.workspace import Workspace
from workbench.gui.panels.review_panel import ReviewPanel
from workbench.gui.session import Session
from workbench.gui.widgets.mask_editor import BRUSH
from workbench.gui.widgets.review_jobs import Predictions
from workbench.gui.workers import JobRunner

PIXEL_THR = 0.5  # raw map units; with p50 = 0 the scale maps 0 -> 0 and 1.0 -> 1 (top of the colour bar)
IMAGE_THR = 1.0


def tiny_predictions(dataset, model_dir):
    """Scores and maps for the test split without a model: defects score 2 (one good 1.5:
    the model disagrees there), goods 0.5; every map has a hot 16 x 16 square at (8, 8)."""
    records = dataset.test
    scores = np.array([2.0 if r.is_anomalous else 0.5 for r in records], np.float32)
    first_good = next(i for i, r in enumerate(records) if r.is_good)
    scores[first_good] = 1.5
    maps = np.zeros((len(records), 64, 64), np.float32)
    maps[:, 8:24, 8:24] = 1.0
    meta = {"thresholds": {"image": {"value": IMAGE_THR}, "pixel": {"value": PIXEL_THR}},
            "score_stats": {"pixel": {"p50": 0.0, "max": PIXEL_THR}}}
    return Predictions(model_dir, evaluate_predictions(records, scores, maps), meta)


class Env:
    def __init__(self, qtbot, path, root):
        self.qtbot, self.path, self.root = qtbot, path, root
        self.jobs = JobRunner()
        self.session = Session(self.jobs)
        self.workspace = Workspace.open_or_create(path)
        entries = self.workspace.datasets()
        self.entry = entries[0] if entries else self.workspace.add_dataset("", root, "mvtec", "widget")
        self.dataset = load_dataset(root, category="widget")
        self.panel = ReviewPanel(self.session)
        qtbot.addWidget(self.panel)
        self.panel.resize(1200, 800)
        self.panel.show()
        self.session.set_workspace(self.workspace)
        self.session.set_dataset(self.entry, self.dataset)

    def with_predictions(self):
        self.panel.set_predictions(tiny_predictions(self.dataset, self.path / "fake-model"))
        self.wait_frame()
        return self

    def wait_frame(self, key=None):
        panel = self.panel
        self.qtbot.waitUntil(lambda: panel.frame is not None and panel.frame.key == (key or panel.current_key),
                             timeout=10_000)

    def key(self, k, widget=None, modifier=Qt.KeyboardModifier.NoModifier):
        self.qtbot.keyClick(widget or self.panel.table, k, modifier)

    def close(self):
        self.panel.loader.wait()
        self.jobs.shutdown()
        self.session.close()


@pytest.fixture
def env(qtbot, tmp_path, tiny_root):
    e = Env(qtbot, tmp_path / "ws", tiny_root / "widget" / "..")
    yield e
    e.close()


def send_mouse(widget, kind, pos: QPoint, button=Qt.MouseButton.LeftButton):
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else Qt.MouseButton.LeftButton
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)),
                        button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton,
                        buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(canvas, view_points):
    vp = canvas.viewport()
    send_mouse(vp, QEvent.Type.MouseButtonPress, view_points[0])
    for p in view_points[1:]:
        send_mouse(vp, QEvent.Type.MouseMove, p)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, view_points[-1])


def pixel(image, x, y):
    c = QColor(image.pixel(x, y))
    return np.array([c.red(), c.green(), c.blue()], int)


# ----------------------------------------------------------------------------- tests
def test_list_shows_scores_decisions_and_counts(env):
    env.with_predictions()
    panel = env.panel
    assert panel.proxy.rowCount() == 6  # the test split by default
    first = panel.proxy.index(0, 0).data(Qt.ItemDataRole.UserRole + 1)
    assert first.score == 2.0  # sorted by score, highest first
    assert "score 2" in panel.info_label.text() and "NG" in panel.info_label.text()
    assert "0</b> reviewed" in panel.counts_label.text() and "14</b> original" in panel.counts_label.text()
    panel.set_filters(split=None)
    assert panel.proxy.rowCount() == 14
    assert panel.frame.heat is not None and panel.frame.region  # overlay and model outline are ready


def test_overlay_renders_expected_colours_at_known_pixels(env):
    env.with_predictions()
    panel = env.panel
    panel.set_filters(label="good")
    env.wait_frame()
    panel.opacity_slider.setValue(100)
    panel.truth_check.setChecked(False)
    canvas = panel.viewer.main
    image = cv2.cvtColor(cv2.imread(str(panel._current_item().record.path)), cv2.COLOR_BGR2RGB)
    jet = cv2.applyColorMap(np.array([[0, 255]], np.uint8), cv2.COLORMAP_JET)[0, :, ::-1].astype(int)
    shown = canvas.render_scene()
    assert (shown.width(), shown.height()) == (64, 64)
    assert np.abs(pixel(shown, 15, 15) - jet[1]).max() <= 2  # hot square: top of the colour bar
    assert np.abs(pixel(shown, 50, 50) - jet[0]).max() <= 2  # normal pixels: bottom of the bar
    yellow = np.array([255, 214, 10])
    assert np.abs(pixel(shown, 8, 15) - yellow).max() <= 60  # the model-region outline runs on its edge
    panel.opacity_slider.setValue(50)
    shown = canvas.render_scene()
    expected = 0.5 * image[50, 50] + 0.5 * jet[0]
    assert np.abs(pixel(shown, 50, 50) - expected).max() <= 3
    env.key(Qt.Key.Key_O)  # overlay off: the plain image
    assert not panel.overlay_check.isChecked()
    shown = canvas.render_scene()
    assert np.abs(pixel(shown, 50, 50) - image[50, 50]).max() <= 1
    panel.colormap_combo.setCurrentText("Viridis")  # re-rendered with the new colour map
    env.key(Qt.Key.Key_O)
    env.qtbot.waitUntil(lambda: panel.map_settings.colormap == cv2.COLORMAP_VIRIDIS and panel.frame is not None
                        and panel.cache.get((panel.current_key, panel._generation)) is not None, timeout=10_000)
    viridis = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_VIRIDIS)[0, 0, ::-1].astype(int)
    panel.opacity_slider.setValue(100)
    assert np.abs(pixel(canvas.render_scene(), 15, 15) - viridis).max() <= 2


def test_brush_strokes_produce_the_expected_mask_and_save_it(env):
    env.with_predictions()
    panel = env.panel
    panel.set_filters(label="good")
    env.wait_frame()
    key = panel.current_key
    canvas = panel.viewer.main
    env.key(Qt.Key.Key_B)
    assert panel.editor.tool == BRUSH
    panel.size_spin.setValue(6)  # diameter 6 px -> radius 3
    view_points = [canvas.mapFromScene(QPointF(x, y)) for x, y in ((10.5, 40.5), (30.5, 40.5), (30.5, 55.5))]
    changed = []
    panel.labelsChanged.connect(changed.append)
    drag(canvas, view_points)
    scene = [canvas.mapToScene(p) for p in view_points]
    expected = np.zeros((64, 64), bool)
    paint_stroke(expected, [(p.x() - 0.5, p.y() - 0.5) for p in scene], 3.0)
    assert np.array_equal(panel.editor.mask, expected)
    assert expected[40, 20] and expected[50, 30] and not expected[20, 20]
    saved = load_mask(panel.mask_dir, key)
    assert saved is not None and np.array_equal(saved, expected)  # saved at once, atomically
    assert mask_file(panel.mask_dir, key) == env.workspace.labels_dir / str(env.entry.id) / f"{key}.png"
    assert changed == [env.entry.id] and panel.undo_stack.count() == 1
    assert "mask ✎" in panel.model.review_text(panel._current_item())
    assert "1 mask(s) drawn" in panel.counts_label.text()
    # eraser, then the polygon and fill tools
    env.key(Qt.Key.Key_E)
    drag(canvas, [canvas.mapFromScene(QPointF(20.5, 40.5))])
    assert not panel.editor.mask[40, 20] and panel.editor.mask[40, 12]
    env.key(Qt.Key.Key_L)
    for x, y in ((40, 2), (60, 2), (60, 12)):
        send_mouse(canvas.viewport(), QEvent.Type.MouseButtonPress, canvas.mapFromScene(QPointF(x, y)))
        send_mouse(canvas.viewport(), QEvent.Type.MouseButtonRelease, canvas.mapFromScene(QPointF(x, y)))
    env.key(Qt.Key.Key_Return)
    assert panel.editor.mask[4:8, 55].all() and not panel.editor.mask[10, 42]
    env.key(Qt.Key.Key_H)  # fill from the heat map: the hot square
    assert panel.editor.mask[8:24, 8:24].all()
    assert panel.undo_stack.count() == 4
    assert np.array_equal(load_mask(panel.mask_dir, key), panel.editor.mask)


def test_undo_redo_of_labels_and_masks(env):
    env.with_predictions()
    panel = env.panel
    panel.set_filters(label="scratch")
    env.wait_frame()
    key, did = panel.current_key, env.entry.id
    original_mask = read_mask(panel._current_item().record.mask_path)
    assert panel.frame.mask_source == "dataset" and np.array_equal(panel.editor.mask, original_mask)
    env.key(Qt.Key.Key_1)  # OK: a false alarm after all
    assert env.workspace.labels(did)[key]["verdict"] == "OK"
    panel.editor.set_tool(BRUSH)
    panel.editor.stroke([(50.5, 50.5), (55.5, 55.5)])
    edited = panel.editor.mask.copy()
    assert load_mask(panel.mask_dir, key) is not None
    env.key(Qt.Key.Key_Z, modifier=Qt.KeyboardModifier.ControlModifier)  # undo the stroke
    assert load_mask(panel.mask_dir, key) is None  # back to the dataset's mask
    assert panel.frame.mask_source == "dataset" and np.array_equal(panel.editor.mask, original_mask)
    env.key(Qt.Key.Key_Z, modifier=Qt.KeyboardModifier.ControlModifier)  # undo OK
    assert key not in env.workspace.labels(did) and not panel.ok_button.isChecked()
    env.key(Qt.Key.Key_Z, modifier=Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert env.workspace.labels(did)[key]["verdict"] == "OK" and panel.ok_button.isChecked()
    panel.undo_stack.redo()
    assert np.array_equal(load_mask(panel.mask_dir, key), edited) and np.array_equal(panel.editor.mask, edited)
    # a note and a class change are undone one by one, also after moving to another image
    panel.note_edit.setText("  fibre, not a scratch ")
    panel.note_edit.editingFinished.emit()
    assert env.workspace.labels(did)[key]["note"] == "fibre, not a scratch"
    env.key(Qt.Key.Key_N)
    panel.undo_stack.undo()
    assert env.workspace.labels(did)[key]["note"] == ""
    panel.undo_stack.undo()
    panel.undo_stack.undo()
    assert key not in env.workspace.labels(did) and load_mask(panel.mask_dir, key) is None


def test_labels_masks_and_classes_persist_across_reopening(qtbot, tmp_path, tiny_root):
    root = tiny_root / "widget" / ".."
    first = Env(qtbot, tmp_path / "ws", root)
    first.with_predictions()
    panel = first.panel
    panel.set_classes(["scratch", "dent"])
    panel.set_filters(label="good")
    first.wait_frame()
    key = panel.current_key
    first.key(Qt.Key.Key_4)  # NG, 2nd class: dent
    panel.note_edit.setText("small dent")
    panel.note_edit.editingFinished.emit()
    panel.editor.set_tool(BRUSH)
    panel.editor.stroke([(20.5, 20.5), (30.5, 25.5)])
    drawn = panel.editor.mask.copy()
    first.close()

    again = Env(qtbot, tmp_path / "ws", root)
    try:
        again.with_predictions()
        p2 = again.panel
        assert p2.classes == ["scratch", "dent"]
        assert [b.text() for b in p2.class_buttons] == ["3  scratch", "4  dent"]
        assert {f: p2.model.label(key)[f] for f in ("verdict", "defect_class", "note")} == {
            "verdict": "NG", "defect_class": "dent", "note": "small dent"}
        assert "1</b> reviewed" in p2.counts_label.text()
        p2.set_filters(label="dent")  # filters use the reviewed class
        assert p2.proxy.rowCount() == 1
        again.wait_frame(key)
        assert p2.frame.mask_source == "reviewed" and np.array_equal(p2.editor.mask, drawn)
        assert p2.ng_button.isChecked() and p2.class_buttons[1].isChecked()
        assert p2.note_edit.text() == "small dent"
        rev = reviewed_records(again.dataset, again.workspace.labels(again.entry.id),
                               dataset_labels_dir(again.workspace.labels_dir, again.entry.id))
        assert rev.n_reviewed == 1 and rev.n_changed == 1
    finally:
        again.close()


def test_keyboard_only_review_of_several_images(env):
    env.with_predictions()
    panel = env.panel
    panel.table.setFocus()
    seen = [panel.current_key]
    # image 1: NG scratch (class key 3); image 2: OK; image 3: NG; image 4: skip; back one: OK
    env.key(Qt.Key.Key_3)
    env.key(Qt.Key.Key_N)
    seen.append(panel.current_key)
    env.key(Qt.Key.Key_1)
    env.key(Qt.Key.Key_Right)
    seen.append(panel.current_key)
    env.key(Qt.Key.Key_2)
    env.key(Qt.Key.Key_N)
    env.key(Qt.Key.Key_N)
    env.key(Qt.Key.Key_P)
    env.key(Qt.Key.Key_Left)
    assert panel.current_key == seen[2]
    env.key(Qt.Key.Key_1)
    assert len(set(seen)) == 3
    labels = env.workspace.labels(env.entry.id)
    assert {k: (v["verdict"], v["defect_class"]) for k, v in labels.items()} == {
        seen[0]: ("NG", "scratch"), seen[1]: ("OK", None), seen[2]: ("OK", None)}
    env.key(Qt.Key.Key_S)  # side by side and back
    assert panel.viewer.side_by_side and panel.viewer.heat.isVisible()
    env.key(Qt.Key.Key_S)
    assert not panel.viewer.side_by_side
    # with auto-advance, OK moves on by itself
    panel.advance_check.setChecked(True)
    before = panel.current_key
    env.key(Qt.Key.Key_1)
    assert panel.current_key != before and env.workspace.labels(env.entry.id)[before]["verdict"] == "OK"
    env.wait_frame()


def test_filters_and_hard_case_queue(env):
    env.with_predictions()
    panel = env.panel
    keys = lambda: [panel.proxy.index(r, 0).data(Qt.ItemDataRole.UserRole + 1).key for r in range(panel.proxy.rowCount())]
    panel.set_filters(hard=True)
    items = [panel.model.item(panel.model.row_of(k)) for k in keys()]
    margins = [abs(it.score - IMAGE_THR) for it in items]
    assert margins == sorted(margins) and panel.proxy.rowCount() == 6
    assert panel.current_key == items[0].key  # the queue starts with the hardest case
    panel.set_filters(hard=False, disagree=True)
    (only,) = keys()
    it = panel.model.item(panel.model.row_of(only))
    assert it.record.is_good and it.score == 1.5
    assert "≠" in panel.proxy.index(0, 5).data()
    panel.select_key(only)
    env.key(Qt.Key.Key_2)  # the engineer agrees with the model: no longer a disagreement
    panel.set_filters(disagree=False)
    panel.set_filters(disagree=True)
    assert panel.proxy.rowCount() == 0
    panel.set_filters(disagree=False, verdict="NG")
    assert keys() == [only]
    panel.set_filters(verdict="unreviewed")
    assert panel.proxy.rowCount() == 5
    panel.set_filters(verdict=None, score_min=1.8)
    assert panel.proxy.rowCount() == 3
    panel.set_filters(score_min=None, label="scratch")
    assert panel.proxy.rowCount() == 3  # the good image reviewed NG without a class counts as "defect"
    panel.set_filters(label=None, split="train")
    assert panel.proxy.rowCount() == 8 and panel.info_label.text().count("not scored")


def test_side_by_side_views_share_zoom_and_pan(env):
    env.with_predictions()
    viewer = env.panel.viewer
    env.panel.side_check.setChecked(True)
    env.qtbot.wait(20)
    viewer.main.set_zoom(4.0)
    viewer.main.centerOn(40, 20)
    for canvas in (viewer.heat, viewer.mask):
        assert canvas.zoom == pytest.approx(4.0)
        assert abs(canvas.center().x() - viewer.main.center().x()) <= 1.0
        assert abs(canvas.center().y() - viewer.main.center().y()) <= 1.0
    viewer.heat.set_zoom(2.0)  # zooming any view zooms the others
    assert viewer.main.zoom == pytest.approx(2.0) and viewer.mask.zoom == pytest.approx(2.0)
    mask = env.panel.editor.mask  # the first image is a scratch with the dataset's mask
    ys, xs = np.nonzero(mask)
    mask_view = viewer.mask.render_scene()  # the mask view: white defect on black
    assert QColor(mask_view.pixel(int(xs[0]), int(ys[0]))).lightness() > 240
    assert QColor(mask_view.pixel(0, 63)).lightness() < 15 and not mask[63, 0]


def test_real_tiny_model_predictions_load_in_a_worker(qtbot, tmp_path, tiny_root, wait_worker):
    from workbench.core.jobs import CancelToken
    from workbench.gui.pipelines import train_evaluate_save

    env = Env(qtbot, tmp_path / "ws", tiny_root / "widget" / "..")
    try:
        out = env.workspace.new_model_dir("padim")
        outcome = train_evaluate_save(env.dataset, "padim", {"image_size": 64}, out, cancel=CancelToken())
        entry = env.workspace.add_model(env.entry.id, "padim", out, outcome.params, outcome.metrics)
        env.session.set_active_model(entry)
        worker = env.panel.pred_worker
        assert worker is not None
        wait_worker(worker)
        assert env.panel.predictions is not None and env.panel.image_threshold is not None
        env.wait_frame()
        assert env.panel.frame.heat is not None and env.panel.frame.heat.size().width() == 64
        assert all(it.score is not None for it in env.panel.model.items if it.record.split == "test")
        # PaDiM compares features: no reconstruction to show, and the control says so
        assert not env.panel.recon_mode_button.isEnabled() and "PaDiM" in env.panel.recon_mode_button.toolTip()
        w = env.panel.evaluate_reviewed()
        wait_worker(w)
        assert "image AUROC" in env.panel.metrics_label.text()
    finally:
        env.close()


def test_export_and_import_through_the_panel_is_one_undo_step(qtbot, tmp_path, tiny_root, wait_worker):
    env = Env(qtbot, tmp_path / "ws", tiny_root / "widget" / "..")
    try:
        env.with_predictions()
        panel = env.panel
        env.key(Qt.Key.Key_2)
        panel.editor.set_tool(BRUSH)
        panel.editor.stroke([(5.5, 5.5), (9.5, 9.5)])
        worker = panel.export_labels("mvtec", tmp_path / "export")
        wait_worker(worker)
        assert (tmp_path / "export" / "workbench_labels.json").is_file() and "Exported" in panel.metrics_label.text()
        expected = env.workspace.labels(env.entry.id)
        mask = panel.editor.mask.copy()
        key = panel.current_key
    finally:
        env.close()
    other = Env(qtbot, tmp_path / "ws2", tiny_root / "widget" / "..")
    try:
        worker = other.panel.import_labels(tmp_path / "export")
        wait_worker(worker)
        got = other.workspace.labels(other.entry.id)
        assert {k: v["verdict"] for k, v in got.items()} == {k: v["verdict"] for k, v in expected.items()}
        assert np.array_equal(load_mask(other.panel.mask_dir, key), mask)
        assert other.panel.undo_stack.count() == 1  # the whole import is one step
        other.panel.undo_stack.undo()
        assert other.workspace.labels(other.entry.id) == {} and load_mask(other.panel.mask_dir, key) is None
    finally:
        other.close()


def test_sort_order_is_kept_through_filter_toggles(env):
    """Rows a filter lets back in go to their sorted place, not to the end of the list."""
    env.with_predictions()
    panel = env.panel
    scores = lambda: [panel.proxy.index(r, 0).data(Qt.ItemDataRole.UserRole + 1).score
                      for r in range(panel.proxy.rowCount())]
    assert panel.proxy.sortColumn() >= 0 and scores() == sorted(scores(), reverse=True)
    for _ in range(2):
        panel.set_filters(score_min=1.8)
        panel.set_filters(score_min=None)
        panel.set_filters(disagree=True)
        panel.set_filters(disagree=False)
    assert panel.proxy.rowCount() == 6
    assert scores() == sorted(scores(), reverse=True)


def test_a_fitted_image_stays_fitted_when_the_viewer_resizes(env):
    """On a laptop the viewer gets its final size after the first image was fitted."""
    env.with_predictions()
    panel = env.panel
    canvas = panel.viewer.main
    panel.viewer.fit()

    def image_in_view() -> bool:
        shown = canvas.mapFromScene(canvas.sceneRect()).boundingRect()
        return canvas.viewport().rect().adjusted(-1, -1, 1, 1).contains(shown)

    for size in ((900, 560), (1400, 900)):
        panel.resize(*size)
        env.qtbot.wait(30)
        assert image_in_view()
        assert canvas.fitted
    zoom = canvas.zoom * 2
    canvas.set_zoom(zoom)  # the user's zoom survives a resize
    panel.resize(1000, 700)
    env.qtbot.wait(30)
    assert canvas.zoom == pytest.approx(zoom) and not canvas.fitted
