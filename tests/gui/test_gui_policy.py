"""The inspection policy in the GUI: the Threshold step's band and inspected area, Review deciding
with the on-screen (unsaved) policy, Save / Revert, and the same decisions as the core / CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

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
