"""What the Threshold step shows, prepared once in a worker, and cheap look-ups for dragging.

:func:`prepare_threshold_data` is the panel's job (run it in a :class:`~workbench.gui.workers.Worker`):
the cached evaluation of the model (``evaluation_for``), its ROC / PR curves, the pixel-level
PRO curve (thinned for plotting), the pixel thresholds of the core's pixel presets and the
calibrations already stored in the package. Everything is computed by ``workbench.core``;
this module only orders the calls and keeps the results.

:class:`ScoreIndex` makes moving the threshold cheap: scores are sorted once, and the
confusion counts at any threshold are two ``np.searchsorted`` calls (O(log n)) packed into
the core's :class:`~workbench.core.metrics.Confusion`, which defines every rate. It gives
exactly what ``confusion_at`` gives (same ``score >= threshold`` rule).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.calibration import calibrate, load_calibrations
from workbench.core.data import Dataset, ImageRecord
from workbench.core.calibration.policy import InspectionPolicy, load_policy
from workbench.core.evaluation import EvalResult, evaluate_predictions, masked_pixel_pairs, relabel_image_metrics
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.methods.package import read_metadata
from workbench.core.metrics import Confusion, Curve, ProCurve, downsample_curve, pr_curve, pro_curve, roc_curve
from workbench.core.labels.reviewed import evaluate_reviewed
from workbench.core.labels.storage import label_key
from workbench.gui.pipelines import cached_evaluation  # predicts in the job's child process when needed

PRO_PLOT_POINTS = 1000  # the thinned PRO curve keeps this many points (plot and operating-point look-up)
PIXEL_VALUE_PRESETS = ("f1", "good_max")  # the core's pixel presets that give a value ("none" gives none)


class ScoreIndex:
    """Sorted good and defective scores: confusion counts at any threshold in O(log n)."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray) -> None:
        labels = np.asarray(labels, bool)
        scores = np.asarray(scores, np.float64)
        if labels.shape != scores.shape:
            raise ValueError(f"got {labels.size} labels but {scores.size} scores")
        self.good = np.sort(scores[~labels])
        self.defect = np.sort(scores[labels])

    @staticmethod
    def count_at_or_above(sorted_scores: np.ndarray, threshold: float) -> int:
        """How many of ``sorted_scores`` (ascending) are ``>= threshold``."""
        return int(sorted_scores.size - np.searchsorted(sorted_scores, threshold, side="left"))

    def confusion(self, threshold: float) -> Confusion:
        tp = self.count_at_or_above(self.defect, threshold)
        fp = self.count_at_or_above(self.good, threshold)
        return Confusion(tp=tp, fp=fp, tn=self.good.size - fp, fn=self.defect.size - tp)

    @property
    def n_good(self) -> int:
        return int(self.good.size)

    @property
    def n_defect(self) -> int:
        return int(self.defect.size)


@dataclass
class ThresholdData:
    """Everything the Threshold step plots, for one model on one dataset's test split.

    Curves are ``None`` where the data cannot give them (no defective or no good images, no
    pixel ground truth); ``notes`` says why, in words for the user.
    """

    evaluation: EvalResult
    labels: np.ndarray
    scores: np.ndarray  # raw image scores (float64), in record order
    roc: Curve | None = None
    pr: Curve | None = None
    pro: ProCurve | None = None  # thinned to at most PRO_PLOT_POINTS for plotting
    aupro: float | None = None
    pixel_thresholds: dict[str, float | None] = field(default_factory=dict)  # core pixel preset -> value
    image_stats: dict[str, float] | None = None  # model.metadata['score_stats']['image']
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    active_calibration: str | None = None
    model_dir: Path | None = None
    dataset_name: str = ""
    dataset_root: str = ""
    notes: list[str] = field(default_factory=list)
    saved_policy: InspectionPolicy | None = None  # the package's policy (thresholds, masks, statistics)
    area: InspectionPolicy | None = None  # whose ROI/ignore masks the scores and pixel metrics use
    base_records: list[ImageRecord] | None = None  # the test records before reviewed labels were applied
    keys: dict[str, int] = field(default_factory=dict)  # label key -> record index (for one changed label)

    def __post_init__(self) -> None:
        self.index = ScoreIndex(self.labels, self.scores)

    @property
    def defect_types(self) -> list[str]:
        return sorted({r.label for r in self.evaluation.records if r.is_anomalous})

    @property
    def has_both_classes(self) -> bool:
        return self.index.n_good > 0 and self.index.n_defect > 0


def image_curves(labels: np.ndarray, scores: np.ndarray) -> tuple[Curve | None, Curve | None, list[str]]:
    """ROC and PR curves when the labels allow them, with a note for each one that is missing."""
    notes: list[str] = []
    roc = pr = None
    if labels.any() and not labels.all():
        roc = roc_curve(labels, scores)
    else:
        notes.append("The ROC curve needs both good and defective test images.")
    if labels.any():
        pr = pr_curve(labels, scores)
    else:
        notes.append("The PR curve needs defective test images.")
    return roc, pr, notes


def threshold_data_from_evaluation(evaluation: EvalResult, *, pixel: bool = True,
                                   image_stats: dict[str, float] | None = None,
                                   cancel: CancelToken | None = None,
                                   report=None, area: InspectionPolicy | None = None) -> ThresholdData:
    """Curves and pixel presets of one evaluation (``pixel=False`` skips everything that
    reads masks: synthetic evaluations in tests and benchmarks have no files)."""
    labels = np.array([r.is_anomalous for r in evaluation.records], bool)
    scores = np.asarray(evaluation.scores, np.float64)
    roc, pr, notes = image_curves(labels, scores)
    data = ThresholdData(evaluation, labels, scores, roc=roc, pr=pr, image_stats=image_stats, notes=notes)
    if not pixel:
        return data
    derived = evaluation.derived if area is None or not area.has_masks else None
    if derived is not None:  # stored with the prediction cache right after training
        if derived.get("pro") is not None:
            p = derived["pro"]
            data.pro = ProCurve(fpr=np.asarray(p["fpr"]), pro=np.asarray(p["pro"]),
                                thresholds=np.asarray(p["thresholds"]))
            data.aupro = evaluation.aupro
        else:
            data.notes.append("No pixel ground truth (defect masks): the PRO curve and the pixel-F1 "
                              "threshold are not available.")
        if evaluation.n_without_mask:
            data.notes.append(f"{evaluation.n_without_mask} defective image(s) have no mask and are left out "
                              "of pixel metrics.")
        data.pixel_thresholds = dict(derived["pixel_presets"])
        return data
    if report:
        report(1, "pixel ground truth")
    masks, maps, without, valid = masked_pixel_pairs(evaluation.records, evaluation.maps, area)
    if cancel is not None:
        cancel.raise_if_cancelled()
    if any((m & v).any() if v is not None else m.any() for m, v in zip(masks, valid)):
        if report:
            report(2, "PRO curve")
        data.pro = downsample_curve(pro_curve(masks, maps, valid=valid if evaluation.masked else None),
                                    PRO_PLOT_POINTS)
        data.aupro = evaluation.aupro
    else:
        data.notes.append("No pixel ground truth (defect masks): the PRO curve and the pixel-F1 "
                          "threshold are not available.")
    if without:
        data.notes.append(f"{without} defective image(s) have no mask and are left out of pixel metrics.")
    del masks, maps
    for i, preset in enumerate(PIXEL_VALUE_PRESETS):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if report:
            report(3 + i, f"pixel threshold ({preset})")
        try:  # the core's own definition of each pixel preset, so the GUI and the CLI agree
            data.pixel_thresholds[preset] = calibrate(evaluation, "manual", 0.0, pixel_preset=preset,
                                                      policy=area).pixel_threshold
        except ValueError as exc:
            data.pixel_thresholds[preset] = None
            data.notes.append(str(exc))
    return data


def relabel_threshold_data(data: ThresholdData, records: list[ImageRecord]) -> ThresholdData:
    """``data`` with new image-level ground truth (a verdict changed in the Review step): the
    labels, score index, image metrics and ROC / PR curves follow at once (milliseconds for
    thousands of images); the pixel parts (PRO curve, pixel presets) are kept as they were
    until :func:`pixel_threshold_data` recomputes them in the background."""
    labels = np.array([r.is_anomalous for r in records], bool)
    roc, pr, notes = image_curves(labels, data.scores)
    evaluation = relabel_image_metrics(data.evaluation, records, roc)
    kept = [n for n in data.notes if not n.startswith(("The ROC curve", "The PR curve"))]
    return dataclasses.replace(data, evaluation=evaluation, labels=labels, roc=roc, pr=pr, notes=notes + kept)


def pixel_threshold_data(evaluation: EvalResult, area: InspectionPolicy | None, *,
                         image_stats: dict[str, float] | None = None, progress: ProgressCallback | None = None,
                         cancel: CancelToken) -> ThresholdData:
    """The pixel parts of the Threshold step (PRO curve, pixel presets) for ``evaluation``'s
    records as they are now, from the scores and maps in memory (no prediction, no cache read):
    the background half of an incremental update after reviewed labels changed."""
    raw = evaluation.raw_scores if evaluation.raw_scores is not None else evaluation.scores
    masked = area is not None and area.has_masks
    fresh = evaluate_predictions(evaluation.records, raw, evaluation.maps, evaluation.predict_seconds,
                                 policy=area if masked else None)
    cancel.raise_if_cancelled()
    report = make_reporter(progress, "Updating pixel metrics", 2 + len(PIXEL_VALUE_PRESETS))
    return threshold_data_from_evaluation(fresh, pixel=True, image_stats=image_stats, cancel=cancel, report=report,
                                          area=area if masked else None)


def prepare_threshold_data(model_dir: str | Path, dataset: Dataset, *, labels: dict | None = None,
                           labels_dir: Path | None = None, area: InspectionPolicy | None = None,
                           progress: ProgressCallback | None = None, cancel: CancelToken) -> ThresholdData:
    """The Threshold step's job: evaluation (cached per model), curves, pixel presets and the
    calibrations stored in the package. With reviewed ``labels`` (from the Review step), the
    reviewed verdicts and masks are the ground truth. Scores and pixel metrics use the ROI /
    ignore masks of ``area`` (default: the package's saved policy)."""
    evaluation = cached_evaluation(model_dir, dataset, progress=progress, cancel=cancel)
    cancel.raise_if_cancelled()
    base_records = list(evaluation.records)
    if labels:
        evaluation, _ = evaluate_reviewed(evaluation, labels, labels_dir, dataset.root, cancel=cancel)
    saved = load_policy(model_dir)
    area = area if area is not None else saved
    if area.has_masks:
        evaluation = evaluate_predictions(evaluation.records, evaluation.scores, evaluation.maps,
                                          evaluation.predict_seconds, policy=area)
    report = make_reporter(progress, "Preparing threshold curves", 2 + len(PIXEL_VALUE_PRESETS) + 1)
    meta = read_metadata(model_dir)
    data = threshold_data_from_evaluation(evaluation, pixel=True, cancel=cancel, report=report,
                                          image_stats=meta.get("score_stats", {}).get("image"),
                                          area=area if area.has_masks else None)
    data.saved_policy, data.area = saved, area
    data.calibrations = load_calibrations(model_dir)
    data.active_calibration = meta.get("active_calibration")
    data.model_dir = Path(model_dir)
    data.dataset_name, data.dataset_root = dataset.name, str(dataset.root)
    data.base_records = base_records
    data.keys = {label_key(dataset.root, r.path): i for i, r in enumerate(base_records)}
    report(2 + len(PIXEL_VALUE_PRESETS) + 1)
    return data


__all__ = ["PIXEL_VALUE_PRESETS", "PRO_PLOT_POINTS", "ScoreIndex", "ThresholdData", "image_curves",
           "pixel_threshold_data", "prepare_threshold_data", "relabel_threshold_data",
           "threshold_data_from_evaluation"]
