"""Threshold step: presets follow the core's definitions, every control moves the ONE threshold,
calibrations round-trip through the model package, and the CLI agrees with the panel.

Linking tests run on a synthetic evaluation (no files, instant); the rest on a tiny PaDiM
(64 px) trained once per module on the shipped sample data (category fabric).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from workbench.core.calibration import (
    rate_intervals, calibrate, choose_threshold, denormalize, load_calibrations, normalize_scores,
    sample_size_warning,
)
from workbench.core.data import ImageRecord
from workbench.core.evaluation import EvalResult
from workbench.core.metrics import confusion_at
from workbench.gui.panels.threshold_panel import ThresholdPanel
from workbench.gui.qtmodels.threshold_data import ScoreIndex, threshold_data_from_evaluation
from workbench.gui.session import Session
from workbench.gui.workers import JobRunner

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "workbench" / "sample_data"
CATEGORY = "fabric"
STATS = {"n": 20, "mean": 1.0, "std": 0.5, "min": 0.2, "p50": 1.0, "max": 2.5}


# ----------------------------------------------------------------------------- fixtures
def synthetic_evaluation(seed: int = 0, n_good: int = 200,
                         defects=(("hole", 30, 3.0), ("scratch", 20, 1.8))) -> EvalResult:
    """An EvalResult from synthetic scores: no files behind it, so only image-level parts work."""
    rng = np.random.default_rng(seed)
    records, scores = [], []
    for i in range(n_good):
        records.append(ImageRecord(Path(f"/nowhere/good/{i:03d}.png"), "test", "good"))
        scores.append(rng.normal(1.0, 0.5))
    for label, n, mean in defects:
        for i in range(n):
            records.append(ImageRecord(Path(f"/nowhere/{label}/{i:03d}.png"), "test", label))
            scores.append(rng.normal(mean, 0.7))
    scores = np.round(np.asarray(scores, np.float32), 2)  # rounding creates ties
    n_def = len(records) - n_good
    return EvalResult(None, None, None, None, None, n_good, n_def, 0, 0.0, 0.0, records=records,
                      scores=scores, maps=np.zeros((len(records), 1, 1), np.float32))


@pytest.fixture
def session(qtbot):
    return Session(JobRunner())


@pytest.fixture
def synth(qtbot, session) -> ThresholdPanel:
    """A shown panel with a synthetic evaluation set directly (no model, no worker)."""
    panel = ThresholdPanel(session)
    qtbot.addWidget(panel)
    panel.resize(1400, 900)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_data(threshold_data_from_evaluation(synthetic_evaluation(), pixel=False, image_stats=STATS))
    return panel


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny PaDiM trained and evaluated once on the sample fabric category (a few seconds)."""
    from workbench.core.data import load_dataset
    from workbench.core.jobs import CancelToken
    from workbench.core.predictions import evaluation_for
    from workbench.gui.pipelines import train_evaluate_save

    model_dir = tmp_path_factory.mktemp("threshold") / "padim"
    dataset = load_dataset(SAMPLE, category=CATEGORY)
    train_evaluate_save(dataset, "padim", {"image_size": 64}, model_dir, cancel=CancelToken())
    evaluation_for(model_dir, dataset)  # fills the package's prediction cache, which the copies share
    return model_dir


@pytest.fixture
def model_dir(trained, tmp_path) -> Path:
    """A private copy of the trained package: tests write calibrations into it."""
    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    return copy


@pytest.fixture
def real_session(qtbot, model_dir, tmp_path, shown_errors):
    """A session with a workspace, the sample fabric dataset and the copied model active."""
    from workbench.core.data import load_dataset
    from workbench.core.workspace import Workspace

    workspace = Workspace.create(tmp_path / "ws")
    entry = workspace.add_dataset("fabric", SAMPLE, category=CATEGORY)
    workspace.add_model(entry.id, "padim", model_dir, {"image_size": 64}, {})
    session = Session(JobRunner())
    session.set_workspace(workspace)
    session.set_dataset(entry, load_dataset(SAMPLE, category=CATEGORY))
    assert session.active_model is not None
    yield session
    session.jobs.shutdown()
    session.close()


def open_panel(qtbot, session) -> ThresholdPanel:
    """Create and show a panel; showing it starts the evaluation worker: wait for the data."""
    panel = ThresholdPanel(session)
    qtbot.addWidget(panel)
    panel.resize(1400, 900)
    with qtbot.waitSignal(panel.dataLoaded, timeout=120_000):
        panel.show()
    return panel


def mouse_drag(widget, start: QPoint, end: QPoint, steps: int = 10) -> None:
    """Hover, press, move with the left button held, release: a real drag through Qt's event
    system (QTest.mouseMove cannot hold a button)."""
    def send(kind, pos: QPointF, button, buttons) -> None:
        event = QMouseEvent(kind, pos, QPointF(widget.mapToGlobal(pos.toPoint())), button, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    a, b = QPointF(start), QPointF(end)
    send(QEvent.Type.MouseMove, a, none, none)  # hover first: pyqtgraph picks the drag item on hover
    send(QEvent.Type.MouseButtonPress, a, left, left)
    for k in range(1, steps + 1):
        QTest.qWait(15)  # pyqtgraph ignores moves faster than its mouse rate limit (100 Hz)
        send(QEvent.Type.MouseMove, a + (b - a) * (k / steps), none, left)
    send(QEvent.Type.MouseButtonRelease, b, left, none)


def labels_scores(panel: ThresholdPanel) -> tuple[np.ndarray, np.ndarray]:
    return panel.data.labels, panel.data.scores


def assert_matrix_shows(panel: ThresholdPanel, threshold: float) -> None:
    labels, scores = labels_scores(panel)
    expected = confusion_at(labels, scores, threshold)
    for key in ("tp", "fp", "tn", "fn"):
        assert panel.confusion_view.cells[key].text().split("\n")[0] == f"{key.upper()} {getattr(expected, key)}"
    assert panel.confusion_view.values["recall"].text() == f"{expected.recall:.1%}"
    assert panel.confusion_view.values["false_alarm_rate"].text() == f"{expected.false_alarm_rate:.1%}"
    assert panel.confusion_view.values["precision"].text() == f"{expected.precision:.1%}"
    assert panel.confusion_view.values["f1"].text() == f"{expected.f1:.1%}"
    assert panel.confusion_view.values["escape_rate"].text() == f"{expected.escape_rate:.1%}"


# ----------------------------------------------------------------------------- fast look-ups
@pytest.mark.parametrize("seed", range(3))
def test_score_index_matches_core_confusion(seed):
    ev = synthetic_evaluation(seed)
    labels = np.array([r.is_anomalous for r in ev.records])
    index = ScoreIndex(labels, ev.scores)
    candidates = np.r_[np.unique(ev.scores), np.unique(ev.scores) + 1e-3, -10.0, 10.0, np.inf]
    for t in candidates:
        assert index.confusion(float(t)) == confusion_at(labels, ev.scores, float(t))


# ----------------------------------------------------------------------------- linking (synthetic)
def test_presets_set_the_core_threshold(synth):
    labels, scores = labels_scores(synth)
    assert synth.current_preset() == "max_f1"  # the default with both classes and no calibration
    assert synth.threshold == choose_threshold(labels, scores, "max_f1")
    assert synth.select_preset("false_alarm", 5.0) == choose_threshold(labels, scores, "false_alarm", 0.05)
    assert synth.threshold == choose_threshold(labels, scores, "false_alarm", 0.05)
    assert synth.select_preset("recall", 90.0) == choose_threshold(labels, scores, "recall", 0.9)
    assert synth.threshold == choose_threshold(labels, scores, "recall", 0.9)
    synth.select_preset("max_f1")
    assert synth.threshold == choose_threshold(labels, scores, "max_f1")
    before = synth.threshold
    synth.select_preset("manual")  # manual keeps the current value
    assert synth.threshold == before
    assert_matrix_shows(synth, synth.threshold)


def test_editing_a_target_applies_its_preset_and_warns_on_small_good_sets(synth):
    labels, scores = labels_scores(synth)
    synth.far_spin.setValue(0.5)  # 200 good images cannot confirm 0.5% (needs 600)
    assert synth.current_preset() == "false_alarm"
    assert synth.threshold == choose_threshold(labels, scores, "false_alarm", 0.005)
    assert not synth.warning.isHidden()
    assert synth.warning.text() == sample_size_warning(200, 0.005)
    synth.far_spin.setValue(5.0)  # 60 needed: enough
    assert synth.warning.isHidden()
    synth.recall_spin.setValue(80.0)
    assert synth.current_preset() == "recall"
    assert synth.threshold == choose_threshold(labels, scores, "recall", 0.8)


def test_dragging_the_line_updates_spin_box_and_matrix(qtbot, synth):
    changes = []
    synth.thresholdChanged.connect(lambda image, pixel: changes.append((image, pixel)))
    line = synth.histogram.line
    line.setValue(2.123)  # what InfiniteLine.mouseDragEvent does on every mouse move
    assert synth.current_preset() == "manual"
    assert synth.threshold == pytest.approx(2.123)
    assert synth.threshold_spin.value() == pytest.approx(2.123, abs=10 ** -synth.threshold_spin.decimals())
    assert_matrix_shows(synth, synth.threshold)
    assert changes[-1] == (synth.threshold, synth.pixel_threshold)

    # a real mouse drag on the line, through pyqtgraph's scene
    vb = synth.histogram.getViewBox()
    y_mid = vb.viewRect().center().y()
    start = synth.histogram.mapFromScene(vb.mapViewToScene(QPointF(line.value(), y_mid)))
    end = synth.histogram.mapFromScene(vb.mapViewToScene(QPointF(1.2, y_mid)))
    mouse_drag(synth.histogram.viewport(), start, end)
    assert synth.threshold == pytest.approx(1.2, abs=4 * vb.viewPixelSize()[0])  # within a few pixels
    assert synth.threshold == pytest.approx(line.value())
    assert synth.threshold_spin.value() == pytest.approx(line.value(), abs=10 ** -synth.threshold_spin.decimals())
    assert_matrix_shows(synth, synth.threshold)
    # the recall table follows too
    labels, scores = labels_scores(synth)
    hole = np.array([r.label == "hole" for r in synth.data.evaluation.records])
    assert synth.recall_model.recall_of("hole") == pytest.approx(np.mean(scores[hole] >= synth.threshold))


def test_typing_a_value_moves_the_line(qtbot, synth):
    spin = synth.threshold_spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "1.75")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert synth.threshold == pytest.approx(1.75)
    assert synth.histogram.line.value() == pytest.approx(1.75)
    assert synth.current_preset() == "manual"
    assert_matrix_shows(synth, 1.75)
    # the ROC and PR markers sit at the operating point with the exact intervals around it
    c = synth.confusion()
    assert synth.roc_plot.point_position() == pytest.approx((c.false_alarm_rate, c.recall))
    assert synth.pr_plot.point_position() == pytest.approx((c.recall, c.precision))
    ci = rate_intervals(*labels_scores(synth), 1.75)
    low, high = 100 * ci["recall"].low, 100 * ci["recall"].high
    assert synth.confusion_view.intervals["recall"].text() == f"{low:.1f}–{high:.1f}%"
    assert synth.confusion_view.intervals["escape_rate"].text() == f"{100 - high:.1f}–{100 - low:.1f}%"


def test_clicking_a_roc_point_moves_the_threshold(qtbot, synth):
    roc = synth.data.roc
    i = int(np.argmin(np.hypot(roc.x - 0.3, roc.y - 0.85)))  # a point in the middle of the curve
    pos = synth.roc_plot.view_to_widget(roc.x[i], roc.y[i])
    qtbot.mouseClick(synth.roc_plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert synth.threshold == roc.thresholds[i]
    assert synth.current_preset() == "manual"
    assert synth.roc_plot.point_position() == pytest.approx((roc.x[i], roc.y[i]))
    assert synth.histogram.line.value() == pytest.approx(roc.thresholds[i])
    assert_matrix_shows(synth, roc.thresholds[i])

    pr = synth.data.pr
    j = pr.x.size // 2
    synth.pr_plot.pick(j)
    assert synth.threshold == pr.thresholds[j]
    assert synth.pr_plot.point_position() == pytest.approx((pr.x[j], pr.y[j]))
    synth.roc_plot.pick(0)  # the "flag nothing" end (+inf): just above the highest score
    assert synth.confusion().tp == synth.confusion().fp == 0


def test_normalisation_changes_display_not_the_stored_threshold(synth):
    labels, scores = labels_scores(synth)
    raw = synth.threshold
    synth.norm_combo.setCurrentIndex(synth.norm_combo.findData("minmax"))
    assert synth.normalization == "minmax"
    assert synth.threshold == raw
    shown = normalize_scores(np.array([raw]), "minmax", STATS)[0]
    assert synth.histogram.line.value() == pytest.approx(shown)
    assert synth.threshold_spin.value() == pytest.approx(shown, abs=10 ** -synth.threshold_spin.decimals())
    counts = synth.histogram.counts()
    assert counts["good"].sum() == (~labels).sum() and counts["defect"].sum() == labels.sum()
    synth.histogram.line.setValue(0.5)  # display units in, raw units stored
    assert synth.threshold == pytest.approx(denormalize(0.5, "minmax", STATS))
    synth.norm_combo.setCurrentIndex(synth.norm_combo.findData("quantile"))
    quantile = normalize_scores(np.array([synth.threshold]), "quantile", STATS)[0]
    assert synth.histogram.line.value() == pytest.approx(quantile)
    synth.log_check.setChecked(True)
    assert synth.histogram.log_scale
    synth.norm_combo.setCurrentIndex(synth.norm_combo.findData("raw"))
    assert synth.histogram.line.value() == pytest.approx(synth.threshold)


def test_per_defect_type_table(synth):
    synth.set_threshold(2.0)
    model = synth.recall_model
    records, scores = synth.data.evaluation.records, synth.data.scores
    rows = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert rows == ["hole", "scratch", "good"]
    for r, label in enumerate(("hole", "scratch")):
        mine = np.array([rec.label == label for rec in records])
        assert model.index(r, 1).data() == str(mine.sum())
        assert model.index(r, 2).data() == str(int((scores[mine] >= 2.0).sum()))
        assert model.index(r, 3).data() == f"{np.mean(scores[mine] >= 2.0):.1%}"
    assert "Escaping scratch images" in model.index(1, 3).data(Qt.ItemDataRole.ToolTipRole)


def test_no_defects_disables_defect_presets(qtbot, session):
    panel = ThresholdPanel(session)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_data(threshold_data_from_evaluation(synthetic_evaluation(defects=()), pixel=False))
    assert not panel.preset_buttons["max_f1"].isEnabled() and not panel.preset_buttons["recall"].isEnabled()
    assert panel.current_preset() == "false_alarm"
    assert panel.threshold == choose_threshold(panel.data.labels, panel.data.scores, "false_alarm", 0.01)
    assert panel.data.roc is None and panel.roc_plot.note.isVisible()
    assert not panel.norm_combo.model().item(panel.norm_combo.findData("minmax")).isEnabled()


# ----------------------------------------------------------------------------- a real model
def test_real_model_presets_pixels_and_save_reload(qtbot, real_session, model_dir, shown_errors):
    from workbench.core.predictions import evaluation_for

    panel = open_panel(qtbot, real_session)
    assert shown_errors == []
    evaluation = evaluation_for(model_dir, real_session.dataset)
    labels = np.array([r.is_anomalous for r in evaluation.records])
    assert np.array_equal(panel.data.scores, evaluation.scores.astype(np.float64))
    for preset, percent in (("max_f1", None), ("false_alarm", 10.0), ("recall", 90.0)):
        panel.select_preset(preset, percent)
        assert panel.threshold == choose_threshold(labels, evaluation.scores, preset,
                                                   None if percent is None else percent / 100)
    for pixel in ("f1", "good_max"):
        panel.select_pixel_preset(pixel)
        assert panel.pixel_threshold == calibrate(evaluation, "manual", 0.0, pixel_preset=pixel).pixel_threshold
    assert panel.pro_plot.curve_data is not None and panel.pro_plot.point_position() is not None
    assert f"{evaluation.aupro:.3f}" in panel.pro_plot.legend_text
    panel.select_pixel_preset("manual", 123.5)
    assert panel.pixel_threshold == 123.5

    # save a named calibration
    panel.select_preset("false_alarm", 10.0)
    panel.min_area_spin.setValue(12)
    panel.name_edit.setText("strict")
    saved = []
    panel.calibrationSaved.connect(saved.append)
    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    assert saved == ["strict"] and shown_errors == []
    stored = load_calibrations(model_dir)["strict"]
    assert stored["image_threshold"] == panel.threshold
    assert stored["pixel_threshold"] == 123.5 and stored["min_defect_area"] == 12
    assert stored["preset"] == "false_alarm" and stored["target"] == pytest.approx(0.10)
    assert stored["data"]["dataset"] == real_session.dataset.name and stored["data"]["split"] == "test"
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["active_calibration"] == "strict"
    assert meta["thresholds"]["image"]["value"] == panel.threshold
    strict = panel.threshold

    # a second, manual one; then a fresh panel finds both and starts from the active one
    panel.set_threshold(float(np.median(evaluation.scores)))
    panel.save_calibration("lenient")
    assert load_calibrations(model_dir)["lenient"]["preset"] == "manual"
    panel.close()
    again = open_panel(qtbot, real_session)
    assert again.calibration_names() == ["lenient", "strict"]
    assert again.threshold == float(np.median(evaluation.scores))
    assert again.name_edit.text() == "lenient"
    again.calib_combo.setCurrentIndex(again.calib_combo.findData("strict"))
    qtbot.mouseClick(again.load_button, Qt.MouseButton.LeftButton)
    assert again.threshold == strict
    assert again.current_preset() == "false_alarm" and again.far_spin.value() == pytest.approx(10.0)
    assert again.pixel_threshold == 123.5 and again.current_pixel_preset() == "manual"
    assert again.min_area_spin.value() == 12
    assert again.histogram.line.value() == pytest.approx(strict)


def test_cli_gives_the_panels_thresholds(qtbot, real_session, model_dir, tmp_path, capsys):
    from workbench.cli import main

    panel = open_panel(qtbot, real_session)
    for argv, preset, percent in ((["--target-fpr", "0.2"], "false_alarm", 20.0),
                                  (["--target-recall", "0.9"], "recall", 90.0),
                                  ([], "max_f1", None)):
        out = tmp_path / f"{preset}.json"
        code = main(["calibrate", "--model", str(model_dir), "--data", str(SAMPLE), "--category", CATEGORY,
                     *argv, "--pixel", "f1", "--name", f"cli-{preset}", "--json", str(out), "-q"])
        assert code == 0, capsys.readouterr().err
        cli = json.loads(out.read_text())
        panel.select_preset(preset, percent)
        panel.select_pixel_preset("f1")
        assert panel.threshold == cli["image_threshold"]
        assert panel.pixel_threshold == cli["pixel_threshold"]
        assert panel.build_calibration("x").confusion == cli["confusion"]


def test_switching_model_away_clears_the_panel(qtbot, real_session):
    panel = open_panel(qtbot, real_session)
    seen = []
    panel.thresholdChanged.connect(lambda *a: seen.append(a))
    real_session.set_active_model(None)
    qtbot.waitUntil(lambda: panel.data is None, timeout=5_000)
    assert panel.threshold is None and not panel.save_button.isEnabled()
    assert "Train or select a model" in panel.header.text()


def test_weak_model_warning_names_stronger_methods(qtbot, session):
    panel = ThresholdPanel(session)
    qtbot.addWidget(panel)
    panel.show()
    weak = synthetic_evaluation(defects=(("hole", 40, 1.3),))  # defects barely above the good scores
    weak.image_auroc = 0.70
    panel.set_data(threshold_data_from_evaluation(weak, pixel=False, image_stats=STATS))
    assert panel.weak_warning.isVisibleTo(panel)
    assert "0.700" in panel.weak_warning.text() and "patchcore" in panel.weak_warning.text()
    strong = synthetic_evaluation()
    strong.image_auroc = 0.97
    panel.set_data(threshold_data_from_evaluation(strong, pixel=False, image_stats=STATS))
    panel.set_threshold(float(np.quantile(panel.data.scores, 0.99)))
    assert not panel.weak_warning.isVisibleTo(panel)
    panel.set_threshold(float(np.min(panel.data.scores)))  # rejects every good part
    assert panel.weak_warning.isVisibleTo(panel) and "rejects 100% of good parts" in panel.weak_warning.text()


def test_relabelled_data_equal_a_full_recompute_on_the_new_labels():
    """One verdict changed: the incremental update's labels, curves and image metrics are the
    same as computing everything again on the new ground truth."""
    import dataclasses

    from workbench.core.metrics import f1_max, image_auroc
    from workbench.gui.qtmodels.threshold_data import relabel_threshold_data

    ev = synthetic_evaluation(seed=4, n_good=60, defects=(("hole", 15, 2.5),))
    data = threshold_data_from_evaluation(ev, pixel=False)
    records = list(ev.records)
    records[3] = dataclasses.replace(records[3], label="hole")  # a good image reviewed as NG
    records[70] = dataclasses.replace(records[70], label="good")  # a defect reviewed as OK
    fast = relabel_threshold_data(data, records)
    full = threshold_data_from_evaluation(dataclasses.replace(ev, records=records), pixel=False)
    np.testing.assert_array_equal(fast.labels, full.labels)
    assert fast.evaluation.image_auroc == pytest.approx(image_auroc(full.labels, ev.scores), abs=1e-12)
    assert fast.evaluation.image_auroc != pytest.approx(ev.image_auroc or 0.0)
    assert (fast.evaluation.f1_max, fast.evaluation.f1_threshold) == f1_max(full.labels, ev.scores)
    assert (fast.evaluation.n_good, fast.evaluation.n_defect) == (60, 15)  # one each way
    for a, b in ((fast.roc, full.roc), (fast.pr, full.pr)):
        np.testing.assert_allclose(a.x, b.x)
        np.testing.assert_allclose(a.y, b.y)
    for t in (1.0, 1.7, 2.4):
        assert fast.index.confusion(t) == full.index.confusion(t)
