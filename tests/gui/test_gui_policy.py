"""The inspection policy in the GUI: the Threshold step's band and inspected area, Review deciding
with the on-screen (unsaved) policy, Save / Revert, and the same decisions as the core / CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from workbench.core.calibration import InspectionPolicy, load_policy

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "workbench" / "sample_data"
CATEGORY = "fabric"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from workbench.core.data import load_dataset
    from workbench.core.jobs import CancelToken
    from workbench.core.workflows import train_evaluate_save

    model_dir = tmp_path_factory.mktemp("policy") / "padim"
    train_evaluate_save(load_dataset(SAMPLE, category=CATEGORY), "padim", {"image_size": 64}, model_dir,
                        cancel=CancelToken())
    return model_dir


@pytest.fixture
def gui(qtbot, window, trained, tmp_path):
    """The main window on a workspace with the sample fabric data and a copy of the trained model,
    with the Threshold step's data and Review's predictions loaded."""
    from workbench.core.data import load_dataset
    from workbench.core.workspace import Workspace

    model_dir = tmp_path / "model"
    shutil.copytree(trained, model_dir)
    ws = Workspace.create(tmp_path / "ws")
    entry = ws.add_dataset("fabric", SAMPLE, category=CATEGORY)
    ws.add_model(entry.id, "padim", model_dir, {"image_size": 64}, {})
    ws.close()
    workspace = window.open_workspace(tmp_path / "ws")
    assert workspace is not None
    session = window.session
    entry = workspace.datasets()[0]
    session.set_dataset(entry, load_dataset(SAMPLE, category=CATEGORY))
    session.set_active_model(workspace.models(entry.id)[0])
    with qtbot.waitSignal(window.threshold_panel.dataLoaded, timeout=120_000):
        window.go_to_step(2)
    qtbot.waitUntil(lambda: window.review_panel.predictions is not None, timeout=60_000)
    return window, model_dir


def review_decisions(review) -> dict[str, str]:
    model = review.model
    return {str(it.record.path): model.model_decision(it) for it in model.items if it.score is not None}


def test_training_writes_the_prediction_cache(trained):
    """Threshold and Review open from the cache written right after training (no second prediction)."""
    assert list(trained.glob("predictions-*.npz"))


def test_band_on_the_histogram_review_share_and_unsaved_review(qtbot, gui):
    window, model_dir = gui
    panel, review = window.threshold_panel, window.review_panel
    scores, labels = panel.data.scores, panel.data.labels
    ng, ok = float(np.quantile(scores, 0.8)), float(np.quantile(scores, 0.4))
    with qtbot.waitSignal(panel.policyChanged):
        panel.set_threshold(ng)
    panel.set_ok_threshold(ok)
    # two lines on the histogram and the share of parts going to REVIEW
    assert panel.histogram.ok_line.isVisible() and panel.histogram.ok_threshold() == pytest.approx(ok)
    assert panel.histogram.threshold() == pytest.approx(ng)
    n_review = int(((scores >= ok) & (scores < ng)).sum())
    assert n_review > 0
    assert panel.review_label.text().startswith(f"REVIEW: {n_review} of {scores.size} parts")
    # Review decides with the on-screen policy before saving, and says so
    assert panel.unsaved and review.policy_unsaved and review.policy_bar.isVisibleTo(review)
    assert "Unsaved policy" in review.unsaved_label.text()
    decisions = review_decisions(review)
    assert sum(d == "REVIEW" for d in decisions.values()) == n_review
    expected = InspectionPolicy(ng_threshold=ng, ok_threshold=ok)
    for record, score in zip(panel.data.evaluation.records, scores):
        assert decisions[str(record.path)] == expected.verdict(score)
    assert load_policy(model_dir).ok_threshold is None  # nothing saved yet

    # Save from the Review step: stored in the package, the marker goes away
    review.save_policy_button.click()
    qtbot.waitUntil(lambda: not review.policy_unsaved, timeout=10_000)
    saved = load_policy(model_dir)
    assert saved.ng_threshold == pytest.approx(ng) and saved.ok_threshold == pytest.approx(ok)
    assert not review.policy_bar.isVisibleTo(review)

    # the core / CLI workflow gives the same decisions on the same images
    from workbench.core.workflows import expand_images, predict_images

    items = expand_images([r.path for r in panel.data.evaluation.records])
    result = predict_images(model_dir, items, model_dir.parent / "pred", overlays=False)
    assert dict(zip(map(str, result.paths), result.decisions)) == review_decisions(review)

    # Revert: a moved threshold goes back to the saved one
    panel.set_threshold(float(np.quantile(scores, 0.95)))
    assert review.policy_unsaved
    review.revert_policy_button.click()
    assert panel.threshold == pytest.approx(ng) and panel.ok_threshold == pytest.approx(ok)
    assert not review.policy_unsaved


def test_min_area_changes_the_review_outline(qtbot, gui):
    window, _ = gui
    panel, review = window.threshold_panel, window.review_panel
    panel.set_threshold(float(np.min(panel.data.scores)))  # everything NG: every image gets its outline
    if panel.pixel_threshold is None:
        panel.select_pixel_preset("good_max")
        panel.apply_pixel_preset()
    items = [it for it in review.model.items if it.score is not None]

    def outlined() -> int:
        return sum(len(review._make_frame(it)().region) for it in items)

    before = outlined()
    assert before > 0
    panel.min_area_spin.setValue(10_000_000)
    assert review.policy.min_defect_area == 10_000_000
    assert outlined() == 0


def test_ignore_region_recomputes_scores_keeps_thresholds_and_is_saved(qtbot, gui, monkeypatch):
    from workbench.gui.widgets.area_editor import AreaEditorDialog

    window, model_dir = gui
    panel, review = window.threshold_panel, window.review_panel
    panel.set_threshold(float(np.median(panel.data.scores)))
    threshold = panel.threshold
    shape = (256, 256)
    ignore = np.zeros(shape, bool)
    ignore[:, :128] = True
    # the editor dialog (painted with the brush in real use) returns this mask
    monkeypatch.setattr(AreaEditorDialog, "exec", lambda self: 1)
    monkeypatch.setattr(AreaEditorDialog, "mask", lambda self: ignore)
    raw = panel.data.scores.copy()
    with qtbot.waitSignal(panel.dataLoaded, timeout=120_000):
        assert panel.edit_area("ignore")
    assert panel.threshold == pytest.approx(threshold)  # the thresholds on screen stay
    assert panel.data.evaluation.masked and (panel.data.scores <= raw + 1e-6).all()
    assert (panel.data.scores < raw - 1e-6).any()
    assert panel.unsaved and "Ignore region: 50.0%" in panel.area_label.text()
    qtbot.waitUntil(lambda: review.policy is not None and review.policy.ignore is not None, timeout=10_000)
    assert review.policy_unsaved
    # thresholds half-way between neighbouring scores: torch and onnxruntime differ by ~1e-5, so a
    # threshold exactly at an image's score could flip that one image
    ordered = np.sort(panel.data.scores)
    middle = lambda q: float(ordered[int(q * len(ordered))] + ordered[int(q * len(ordered)) + 1]) / 2  # noqa: E731
    panel.set_threshold(middle(0.5))
    panel.set_ok_threshold(middle(0.3))
    assert panel.save_calibration("with-ignore") is not None
    saved = load_policy(model_dir)
    np.testing.assert_array_equal(saved.ignore, ignore)
    assert (model_dir / "ignore_mask.png").is_file()
    qtbot.waitUntil(lambda: not review.policy_unsaved, timeout=10_000)

    # export, then `workbench predict` on onnxruntime: the same decisions as Review showed
    import csv

    from workbench.cli import main

    gui_decisions = review_decisions(review)
    assert {"OK", "REVIEW", "NG"} <= set(gui_decisions.values())
    onnx_dir = model_dir.parent / "onnx"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(onnx_dir)]) == 0
    out = model_dir.parent / "onnx_pred"
    paths = [str(r.path) for r in panel.data.evaluation.records]
    assert main(["predict", "--model", str(onnx_dir), *paths, "--out", str(out), "-q", "--no-overlays"]) == 0
    rows = list(csv.DictReader(open(out / "scores.csv", encoding="utf-8")))
    assert {r["path"]: r["decision"] for r in rows} == gui_decisions


def test_area_editor_paints_with_the_brush(qtbot):
    from workbench.gui.widgets.area_editor import AreaEditorDialog

    image = np.full((120, 160, 3), 128, np.uint8)
    dialog = AreaEditorDialog(image, None, "ignore")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert not dialog.mask().any()
    dialog.editor.stroke([(20.0, 20.0), (60.0, 20.0)])
    mask = dialog.mask()
    assert mask.shape == (120, 160) and mask[20, 40] and not mask[100, 150]


def gap_middle(scores: np.ndarray, q: float) -> float:
    """A threshold half-way between two neighbouring scores (torch and onnxruntime / a cached
    and a fresh prediction differ in the last digits; a threshold at a score could flip it)."""
    ordered = np.sort(scores)
    i = int(q * (len(ordered) - 1))
    return float(ordered[i] + ordered[i + 1]) / 2


def test_threshold_matrix_has_a_review_column_with_the_numbers_of_evaluate_json(qtbot, gui, tmp_path):
    """With a band the matrix shows OK / REVIEW / NG columns; every cell and rate equals the
    core's policy_report, and `workbench evaluate --json` at the saved policy prints the same."""
    import json

    from workbench.cli import main
    from workbench.core.workflows import decide_evaluation
    from workbench.gui.widgets.threshold_metrics import CELL_WHERE

    window, model_dir = gui
    panel = window.threshold_panel
    view = panel.confusion_view
    scores = panel.data.scores
    panel.set_ok_threshold(None)
    panel.set_threshold(gap_middle(scores, 0.7))
    assert not view.review_shown  # no band: the usual OK / NG matrix
    panel.set_ok_threshold(gap_middle(scores, 0.35))
    assert view.review_shown and view.cells["rd"].isVisible() and view.cells["rg"].isVisible()

    core = decide_evaluation(panel.data.evaluation, panel.policy()).report  # what evaluate prints
    assert panel.policy_report() == core
    for key, (truth, verdict) in CELL_WHERE.items():
        assert view.cells[key].text().split("\n")[0].split()[-1] == str(core["confusion"][truth][verdict])
    assert core["confusion"]["good"]["REVIEW"] + core["confusion"]["defect"]["REVIEW"] > 0
    for key in ("recall", "escape_rate", "false_alarm_rate", "review_rate", "precision"):
        rate = core["rates"][key]
        assert view.values[key].text() == f"{rate['estimate']:.1%}"
        assert view.intervals[key].text() == f"{100 * rate['low']:.1f}–{100 * rate['high']:.1f}%"
    assert view.values["f1"].text() == "–"  # F1 is an OK / NG measure

    # the command line at the saved policy (a fresh torch prediction, not the GUI's cache)
    assert panel.save_calibration("band") is not None
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(SAMPLE), "--category", CATEGORY, "-q",
                 "--json", str(out)]) == 0
    at_policy = json.loads(out.read_text())["at_policy"]
    assert at_policy["confusion"] == core["confusion"]
    for key in ("recall", "escape_rate", "false_alarm_rate", "review_rate", "precision"):
        assert at_policy["rates"][key] == pytest.approx(core["rates"][key])

    panel.set_ok_threshold(None)  # band off: the REVIEW column goes
    assert not view.review_shown


def test_a_review_verdict_updates_the_threshold_step_incrementally(qtbot, gui):
    """A verdict changed in Review updates the Threshold step in place (never cleared, no
    re-evaluation): well under 100 ms per change; the pixel metrics follow in the background
    and then equal a full recompute."""
    import statistics
    import time

    from workbench.core.labels import label_key

    window, _ = gui
    panel, review = window.threshold_panel, window.review_panel
    panel.select_preset("max_f1")
    root = window.session.dataset.root
    records = panel.data.evaluation.records
    index = next(i for i, r in enumerate(records) if r.is_anomalous and r.mask_path is not None)
    key = label_key(root, records[index].path)
    loaded: list[int] = []
    panel.dataLoaded.connect(lambda: loaded.append(1))
    times, cpu = [], []
    for verdict in ("OK", "NG") * 5:
        start, start_cpu = time.perf_counter(), time.thread_time()
        review.apply_label(key, {"verdict": verdict, "defect_class": None, "note": ""})
        times.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
        assert panel.data is not None and not panel.busy  # shown all along
        assert bool(panel.data.labels[index]) == (verdict == "NG")
    review.apply_label(key, {"verdict": "OK", "defect_class": None, "note": ""})
    median = statistics.median(times)
    print(f"\nverdict change in Review -> Threshold step updated: median {1000 * median:.1f} ms wall, "
          f"{1000 * statistics.median(cpu):.1f} ms CPU of the GUI thread, over {len(times)} changes "
          f"({len(records)} test images; load average {os.getloadavg()[0]:.1f})")
    assert median < 0.5
    assert not loaded  # no full re-evaluation
    # image level at once: the good image now counts as good in the matrix and the preset
    labels = panel.data.labels
    assert not labels[index]
    expected = panel.policy_report()
    assert expected["n_good"] == int((~labels).sum())
    from workbench.core.calibration import choose_threshold

    assert panel.threshold == pytest.approx(choose_threshold(labels, panel.data.scores, "max_f1"))
    # pixel level in the background: the same numbers as a full evaluation of the reviewed labels
    qtbot.waitUntil(lambda: panel.pixel_job is None and not panel._pixel_timer.isActive(), timeout=60_000)
    incremental = (panel.data.aupro, panel.data.evaluation.pixel_auroc, dict(panel.data.pixel_thresholds),
                   panel.data.evaluation.image_auroc)
    with qtbot.waitSignal(panel.dataLoaded, timeout=120_000):
        panel.refresh(force=True)
    full = (panel.data.aupro, panel.data.evaluation.pixel_auroc, dict(panel.data.pixel_thresholds),
            panel.data.evaluation.image_auroc)
    assert incremental[0] == pytest.approx(full[0]) and incremental[1] == pytest.approx(full[1])
    assert incremental[2] == pytest.approx(full[2]) and incremental[3] == pytest.approx(full[3])
    assert not panel.data.labels[index]


def test_inspected_area_with_a_polygon_is_recorded_in_the_workspace_and_restored(qtbot, gui, monkeypatch, tmp_path):
    """The ignore region (painted pixels + a polygon) is stored in the workspace per dataset at
    once, comes back when the workspace is reopened, and goes into the package on Save."""
    from workbench.core.calibration.area import InspectedArea, rasterize_polygons
    from workbench.core.data import load_dataset, read_image
    from workbench.gui.widgets.area_editor import AreaEditorDialog

    window, model_dir = gui
    panel = window.threshold_panel
    h, w = read_image(panel.sample_image_path()).shape[:2]
    polygon = [(10.0, 10.0), (w * 0.6, 12.0), (w * 0.3, h * 0.7)]

    def draw(dialog: AreaEditorDialog) -> int:  # what a user does: a brush stroke and a polygon
        dialog.editor.stroke([(w - 20.0, h - 20.0), (w - 5.0, h - 20.0)])
        dialog.editor.set_tool("polygon")
        for x, y in polygon:
            dialog.editor.press(x + 0.5, y + 0.5)  # scene coordinates: pixel centres at +0.5
        assert dialog.editor.close_polygon()
        return 1

    monkeypatch.setattr(AreaEditorDialog, "exec", draw)
    with qtbot.waitSignal(panel.dataLoaded, timeout=120_000):
        assert panel.edit_area("ignore")
    drawn = panel.drawn["ignore"]
    assert drawn.polygons == (tuple(polygon),)
    expected = drawn.mask()
    assert (rasterize_polygons([polygon], (h, w)) <= expected).all() and expected[h - 20, w - 10]
    np.testing.assert_array_equal(panel.ignore, expected)
    entry = window.session.dataset_entry
    stored = window.session.workspace.inspected_areas(entry.id)["ignore"]
    assert isinstance(stored, InspectedArea) and stored.polygons == (tuple(polygon),)
    np.testing.assert_array_equal(stored.mask(), expected)
    assert panel.unsaved  # recorded in the workspace, not yet in the model

    # reopen the workspace: the Threshold step shows the same area (and its polygon)
    ws_dir = window.session.workspace.path
    workspace = window.open_workspace(ws_dir)
    entry = workspace.datasets()[0]
    window.session.set_dataset(entry, load_dataset(SAMPLE, category=CATEGORY))
    window.session.set_active_model(workspace.models(entry.id)[0])
    qtbot.waitUntil(lambda: panel.data is not None and panel.ignore is not None, timeout=120_000)
    np.testing.assert_array_equal(panel.ignore, expected)
    assert panel.drawn["ignore"].polygons == (tuple(polygon),)
    assert panel.data.evaluation.masked and "Ignore region" in panel.area_label.text()

    # Save puts it into the model package
    assert panel.save_calibration("with-polygon") is not None
    np.testing.assert_array_equal(load_policy(model_dir).ignore, expected)

    # Clear is recorded too: reopening shows the whole image even though the package has a mask
    with qtbot.waitSignal(panel.dataLoaded, timeout=120_000):
        panel.set_area(None, None)
    assert window.session.workspace.inspected_areas(entry.id) == {}
    workspace = window.open_workspace(ws_dir)
    entry = workspace.datasets()[0]
    window.session.set_dataset(entry, load_dataset(SAMPLE, category=CATEGORY))
    window.session.set_active_model(workspace.models(entry.id)[0])
    qtbot.waitUntil(lambda: panel.data is not None, timeout=120_000)
    assert panel.ignore is None and panel.unsaved


def test_folder_inference_decides_with_the_on_screen_policy_and_opens_in_review(qtbot, gui, tmp_path):
    """'Run inference on folder' decides with the Threshold step's policy as on screen (unsaved
    here, and says so), through the core workflow, and its results open in Review: one row per
    image with its decision and overlay, scores.csv beside them."""
    from workbench.core.workflows import expand_images, predict_images

    window, model_dir = gui
    panel, review, training = window.threshold_panel, window.review_panel, window.training_panel
    scores = panel.data.scores
    panel.set_threshold(gap_middle(scores, 0.75))
    panel.set_ok_threshold(gap_middle(scores, 0.4))
    assert panel.unsaved
    screen = panel.policy()
    folder = tmp_path / "incoming"
    folder.mkdir()
    records = panel.data.evaluation.records
    picked = [r for r in records if r.is_good][:4] + [r for r in records if r.is_anomalous][:5]
    for i, r in enumerate(picked):
        shutil.copy(r.path, folder / f"{i:02d}_{r.path.name}")
    expected_by_name = {f"{i:02d}_{r.path.name}": screen.verdict(scores[records.index(r)]) for i, r in enumerate(picked)}

    with qtbot.waitSignal(training.inferenceFinished, timeout=120_000) as finished:
        assert training.start_inference(folder) is not None
    summary = finished.args[0]
    assert summary.unsaved and summary.policy.fingerprint() == screen.fingerprint()
    view = review.folder_view
    qtbot.waitUntil(lambda: review.showing_folder_run and review.isVisible(), timeout=10_000)
    assert window.stack.currentWidget() is review
    assert "not saved yet" in view.title.text() and "provisional" not in view.title.text()
    assert "provisional" not in training.models_box.summary.text()
    # one row per image, the on-screen policy's decisions, the core's overlay for each
    assert view.model.rowCount() == len(picked)
    shown = {view.model.index(i, 0).data(): view.model.index(i, 2).data() for i in range(view.model.rowCount())}
    assert shown == expected_by_name
    assert {"OK", "NG"} <= set(shown.values())
    csv_path = summary.csv_path
    assert csv_path.is_file() and all(o is not None and o.parent == csv_path.parent for o in summary.overlays)
    assert str(csv_path) in view.csv_label.text()
    assert view._pixmap is not None and view.image.pixmap() is not None  # the overlay of the selected row
    first = view.current_row()
    assert summary.scores[first] == max(summary.scores)  # sorted by score, highest first
    # the same decisions as the core workflow (the CLI's) at the same policy
    core = predict_images(model_dir, expand_images([folder]), tmp_path / "cli", policy=screen, overlays=False)
    assert dict(zip((p.name for p in core.paths), core.decisions)) == shown
    # labelling keys do not act on the hidden dataset list while a folder run is shown
    before = dict(window.session.workspace.labels(window.session.dataset_entry.id))
    qtbot.keyClick(view.table, Qt.Key.Key_2)
    assert window.session.workspace.labels(window.session.dataset_entry.id) == before
    view.back_button.click()
    assert not review.showing_folder_run

    # saved: the run says it used the saved calibration
    assert panel.save_calibration("folder") is not None
    with qtbot.waitSignal(training.inferenceFinished, timeout=120_000) as finished:
        training.start_inference(folder)
    assert not finished.args[0].unsaved
    assert "saved calibration" in review.folder_view.title.text()


def test_folder_run_of_a_model_without_calibration_says_provisional(trained, tmp_path):
    from workbench.core.jobs import CancelToken
    from workbench.gui.pipelines import run_inference

    model_dir = tmp_path / "model"
    shutil.copytree(trained, model_dir)
    images = sorted((SAMPLE / CATEGORY / "test" / "good").glob("*.png"))[:2]
    summary = run_inference(model_dir, images, "two images", cancel=CancelToken())
    assert "provisional threshold" in summary.policy_text() and "provisional" in summary.text()
    assert all(o is not None and o.is_file() for o in summary.overlays)
