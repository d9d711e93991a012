"""What an inspection report says, as one plain dict (the template's context).

Two sources:

* :func:`model_report_context`: a model package and its dataset. The metrics come from the
  metrics core exactly as ``workbench evaluate`` computes them (:func:`~workbench.core.workflows.
  decide_evaluation` on the test split, the model's prediction cache reused when it matches),
  the decisions from the inspection policy (the active one or a named saved calibration).
* :func:`folder_report_context`: an exported package and a folder it scored (the Inspector's
  ``scores.csv`` + overlays). No training dataset is involved; when the folder's layout gives
  labels (``good/`` and one folder per defect type) image-level metrics are computed from them,
  otherwise the report shows scores and decisions only and says why.

Torch-free at import (the Inspector writes reports without torch): the model path imports the
predictions cache and the methods lazily, only when a model report is built.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.calibration.policy import InspectionPolicy, PolicyError, load_policy, read_package_metadata
from workbench.core.calibration.thresholds import exact_interval, policy_report
from workbench.core.data import Dataset, ImageRecord
from workbench.core.jobs import CancelToken, ProgressCallback, make_reporter
from workbench.core.metrics import downsample_curve, image_auroc, pr_curve, pro_curve, roc_curve
from workbench.core.report import plots
from workbench.core.report.gallery import GalleryItem, file_base64, overlay_item, worst_indices
from workbench.core.report.record import file_list_hash, run_record

GOOD_FOLDERS = frozenset({"good", "ok", "normal"})
PLOT_POINTS = 600
AUPRO_LIMIT = 0.3


def _b64(png: bytes | None) -> str | None:
    return base64.b64encode(png).decode("ascii") if png else None


def _interval(k: int, n: int) -> dict[str, float] | None:
    return asdict(exact_interval(k, n)) if n else None


def policy_summary(policy: InspectionPolicy, name: str | None) -> dict[str, Any]:
    return {"name": name, "source": policy.source, "ng_threshold": policy.ng_threshold,
            "ok_threshold": policy.ok_threshold, "pixel_threshold": policy.outline_threshold,
            "min_defect_area": policy.min_defect_area, "roi": policy.roi is not None,
            "ignore": policy.ignore is not None}


def dataset_summary(records: list[ImageRecord], name: str, root: Path | None, layout: str,
                    report: Any = None) -> dict[str, Any]:
    """Counts per split and label, missing masks and skipped files."""
    counts = Counter((r.split, r.label) for r in records)
    splits = []
    for split in sorted({s for s, _ in counts}, key=lambda s: ("train", "val", "test").index(s)
                        if s in ("train", "val", "test") else 9):
        labels = sorted((label, n) for (s, label), n in counts.items() if s == split)
        splits.append({"split": split, "total": sum(n for _, n in labels), "labels": labels})
    return {"name": name, "root": str(root) if root is not None else "", "layout": layout, "splits": splits,
            "n_images": len(records),
            "missing_masks": len(report.missing_masks) if report is not None else 0,
            "unreadable": [(str(p), why) for p, why in report.unreadable[:20]] if report is not None else [],
            "n_unreadable": len(report.unreadable) if report is not None else 0,
            "hash": file_list_hash(records, root)}


def per_defect_recall(records: list[ImageRecord], verdicts: np.ndarray) -> list[dict[str, Any]]:
    """Per defect type: images not passed as OK (the policy report's recall), with exact intervals;
    a last row for good images with their false alarms (NG or error)."""
    verdicts = np.asarray(verdicts, dtype=object)
    rows = []
    for label in sorted({r.label for r in records if r.is_anomalous}):
        idx = [i for i, r in enumerate(records) if r.label == label]
        caught = int(sum(verdicts[i] != "OK" for i in idx))
        rows.append({"label": label, "n": len(idx), "caught": caught, "escaped": len(idx) - caught,
                     "recall": _interval(caught, len(idx)), "is_good": False})
    good = [i for i, r in enumerate(records) if r.is_good]
    if good:
        alarms = int(sum(verdicts[i] in ("NG", "error") for i in good))
        rows.append({"label": "good", "n": len(good), "caught": alarms, "escaped": 0,
                     "recall": _interval(alarms, len(good)), "is_good": True})
    return rows


def _operating_point(labels: np.ndarray, scores: np.ndarray, ng: float | None) -> dict[str, float] | None:
    if ng is None or labels.all() or not labels.any():
        return None
    flagged = ~(scores < ng)
    tp = int((flagged & labels).sum())
    return {"fpr": float((flagged & ~labels).sum() / (~labels).sum()), "tpr": tp / int(labels.sum()),
            "precision": tp / int(flagged.sum()) if flagged.any() else 1.0}


def image_plots(labels: np.ndarray, scores: np.ndarray, policy: InspectionPolicy, auroc: float | None
                ) -> dict[str, str | None]:
    """ROC and PR curves (with the NG threshold's point) and the good/defect score histogram."""
    out: dict[str, str | None] = {"roc": None, "pr": None}
    finite = np.isfinite(scores)
    point = _operating_point(labels[finite], scores[finite], policy.ng_threshold)
    if labels[finite].any() and not labels[finite].all():
        roc = downsample_curve(roc_curve(labels[finite], scores[finite]), PLOT_POINTS)
        out["roc"] = _b64(plots.curve_png(
            roc.x, roc.y, title="ROC (images)", xlabel="false-alarm rate (good flagged NG)",
            ylabel="recall (defects flagged NG)", area_label=f"image AUROC {auroc:.3f}" if auroc is not None else None,
            marker=(point["fpr"], point["tpr"]) if point else None, marker_label="NG threshold"))
        pr = downsample_curve(pr_curve(labels[finite], scores[finite]), PLOT_POINTS)
        out["pr"] = _b64(plots.curve_png(
            pr.x, pr.y, title="Precision-recall (images)", xlabel="recall", ylabel="precision",
            marker=(point["tpr"], point["precision"]) if point else None, marker_label="NG threshold"))
    groups = [("good", scores[~labels], plots.GOOD_COLOUR), ("defect", scores[labels], plots.DEFECT_COLOUR)]
    out["histogram"] = _b64(plots.histogram_png([g for g in groups if g[1].size], policy.ng_threshold,
                                                policy.ok_threshold, title="Image scores and thresholds"))
    return out


def _gallery_names(records: list[ImageRecord], root: Path | None) -> list[str]:
    names = []
    for r in records:
        try:
            names.append(r.path.relative_to(root).as_posix() if root is not None else r.path.name)
        except ValueError:
            names.append(r.path.name)
    return names


def _items(items: list[GalleryItem]) -> list[dict[str, Any]]:
    return [asdict(i) for i in items]


# ----------------------------------------------------------------------------- model + dataset
def model_report_context(model_dir: str | Path, dataset: Dataset, *, calibration: str | None = None,
                         policy: InspectionPolicy | None = None, device: Any = None, use_cache: bool = True,
                         progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Everything the report shows for ``model_dir`` on ``dataset``'s test split.

    ``calibration``: a saved calibration's name (its thresholds on the package's masks);
    ``policy`` overrides both; default the package's active policy.
    """
    from workbench.core.calibration.calibrate import load_calibrations, policy_of
    from workbench.core.evaluation import evaluate_model, evaluate_predictions, masked_pixel_pairs
    from workbench.core.predictions import load_predictions, save_predictions
    from workbench.core.workflows import decide_evaluation

    cancel = cancel or CancelToken()
    started = time.perf_counter()
    model_dir = Path(model_dir)
    meta = read_package_metadata(model_dir)
    if not dataset.test:
        raise ValueError(f"Dataset '{dataset.name}' ({dataset.root}) has no test images: a report needs labelled "
                         "test images (test/good and test/<defect>).")
    name = calibration if calibration is not None else meta.get("active_calibration")
    if policy is None:
        policy = load_policy(model_dir)
        if calibration is not None:
            saved = load_calibrations(model_dir)
            if calibration not in saved:
                known = ", ".join(sorted(saved)) or "none saved yet"
                raise ValueError(f"{model_dir / 'model.json'} has no calibration named '{calibration}' "
                                 f"(saved: {known}). Calibrate first, or leave the name out for the active policy.")
            policy = policy_of(saved[calibration], policy)
    evaluation = load_predictions(model_dir, dataset) if use_cache else None
    cached = evaluation is not None
    device_used = f"cached predictions (trained on {meta.get('training', {}).get('device', '?')})"
    if evaluation is None:
        from workbench.core.methods.package import load_model

        model = load_model(model_dir, device=device)
        evaluation = evaluate_model(model, dataset, progress, cancel)
        save_predictions(model_dir, dataset, evaluation)
        device_used = str(model.device)
    if policy.has_masks:
        evaluation = evaluate_predictions(evaluation.records, evaluation.scores, evaluation.maps,
                                          evaluation.predict_seconds, policy=policy)
    checked = decide_evaluation(evaluation, policy, method=meta.get("method"))
    evaluated = time.perf_counter()
    cancel.raise_if_cancelled()
    step = make_reporter(progress, "Report · plots and gallery", 3)
    step(0)

    records = evaluation.records
    labels = np.array([r.is_anomalous for r in records], bool)
    scores = np.asarray(evaluation.scores, np.float64)
    verdicts = policy.verdicts(scores)
    figures = image_plots(labels, scores, policy, evaluation.image_auroc)
    figures["pro"] = None
    pro = (evaluation.derived or {}).get("pro") if not evaluation.masked else None
    if pro is None and evaluation.aupro is not None:
        masks, maps, _, valid = masked_pixel_pairs(records, evaluation.maps, policy if policy.has_masks else None)
        curve = downsample_curve(pro_curve(masks, maps, valid=valid if policy.has_masks else None), PLOT_POINTS)
        pro = {"fpr": curve.fpr, "pro": curve.pro}
    if pro is not None:
        figures["pro"] = _b64(plots.curve_png(
            pro["fpr"], pro["pro"], title="PRO (pixels, to FPR 0.3)", xlabel="pixel false-positive rate",
            ylabel="per-region overlap", xlim=AUPRO_LIMIT,
            area_label=f"AUPRO {evaluation.aupro:.3f}" if evaluation.aupro is not None else None))
    step(1)
    cancel.raise_if_cancelled()

    try:
        scale = policy.map_scale(evaluation.maps)
    except PolicyError:
        scale = None
    names = _gallery_names(records, Path(dataset.root))
    escapes, alarms = worst_indices(labels, verdicts, scores)
    gallery = {"escapes": [], "false_alarms": []}
    if scale is not None:
        raw = evaluation.raw_scores if evaluation.raw_scores is not None else evaluation.scores
        for key, idx in (("escapes", escapes), ("false_alarms", alarms)):
            gallery[key] = _items([overlay_item(records[i], float(raw[i]), evaluation.maps[i], policy, scale, names[i])
                                   for i in idx])
    step(2)

    params = dict(meta.get("params", {}))
    training = dict(meta.get("training", {}))
    record = run_record(
        seed=params.get("seed"), device=device_used,
        dataset_hash=file_list_hash(dataset.records, dataset.root),
        timings={"report_seconds": time.perf_counter() - started, "evaluation_seconds": evaluated - started,
                 "predict_seconds": float(evaluation.predict_seconds), "ms_per_image": float(evaluation.ms_per_image),
                 "fit_seconds": float(training.get("fit_seconds") or 0.0)},
        extra={"prediction_cache": "used" if cached else "computed and stored"})
    step(3)
    metrics = {k: getattr(evaluation, k) for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "f1_threshold",
                                                   "n_good", "n_defect", "n_without_mask")}
    return {
        "kind": "model",
        "title": f"Inspection report: {meta.get('method', '?')} on {dataset.name}",
        "notes": ([f"{evaluation.n_without_mask} defective image(s) have no mask and are left out of pixel metrics."]
                  if evaluation.n_without_mask else [])
                 + (["ROI / ignore masks applied: ignored pixels neither raise image scores nor count in pixel "
                     "metrics."] if evaluation.masked else []),
        "warning": checked.warning,
        "dataset": dataset_summary(dataset.records, dataset.name, Path(dataset.root), dataset.layout, dataset.report),
        "model": {"dir": str(model_dir), "method": meta.get("method"), "params": params,
                  "backbone": meta.get("backbone"), "input_size": (meta.get("input") or {}).get("size"),
                  "training": training, "created_at": meta.get("created_at"),
                  "calibrations": sorted((meta.get("calibrations") or {}).keys())},
        "policy": policy_summary(policy, name),
        "metrics": metrics,
        "at_policy": checked.report,
        "per_defect": per_defect_recall(records, verdicts) if policy.ng_threshold is not None else [],
        "plots": figures,
        "gallery": gallery,
        "record": record,
    }


# ----------------------------------------------------------------------------- exported package + scored folder
def folder_labels(paths: list[Path], folder: Path) -> list[str] | None:
    """Labels from the folder layout: the image's parent folder, ``good``/``ok``/``normal`` ->
    good, any other name -> that defect type. None (unlabelled) unless every image lies in a
    sub-folder and at least one of them is a good folder."""
    labels = []
    for path in paths:
        parent = Path(path).parent
        if parent.resolve() == Path(folder).resolve():
            return None
        labels.append("good" if parent.name.lower() in GOOD_FOLDERS else parent.name)
    return labels if "good" in labels else None


def folder_report_context(export_dir: str | Path, folder: str | Path, run_dir: str | Path, *,
                          stems: dict[str, str] | None = None, scoring_seconds: float | None = None,
                          progress: ProgressCallback | None = None, cancel: CancelToken | None = None
                          ) -> dict[str, Any]:
    """The report of a predict run (``run_dir/scores.csv`` + overlays) of the exported package
    ``export_dir`` over ``folder``. ``stems`` maps each CSV path to its overlay stem (default:
    the path inside ``folder`` with '/' -> '__', the Inspector's rule)."""
    from workbench.core.batch_predict import CSV_FILE, overlay_name, read_rows

    cancel = cancel or CancelToken()
    started = time.perf_counter()
    export_dir, folder, run_dir = Path(export_dir), Path(folder), Path(run_dir)
    meta = read_package_metadata(export_dir)
    policy = InspectionPolicy.from_metadata(meta, export_dir)
    csv_path = run_dir / CSV_FILE
    if not csv_path.is_file():
        raise ValueError(f"{csv_path} is missing: score the folder first, then write the report.")
    rows = read_rows(csv_path)
    unreadable = [r for r in rows if r["decision"] == "unreadable"]
    rows = [r for r in rows if r["decision"] != "unreadable"]
    if not rows:
        raise ValueError(f"{csv_path} holds no scored image: nothing to report.")
    paths = [Path(r["path"]) for r in rows]
    scores = np.array([float(r["score"]) if r["score"] else np.nan for r in rows], np.float64)
    verdicts = np.array([r["decision"] for r in rows], dtype=object)
    label_names = folder_labels(paths, folder)
    records = [ImageRecord(p, "test", label_names[i] if label_names else "unknown") for i, p in enumerate(paths)]
    step = make_reporter(progress, "Report · plots and gallery", 2)
    step(0)

    notes = ["This report covers an exported package and a folder it scored; the metrics of the model's "
             "training dataset (its test split) are not part of it."]
    metrics: dict[str, Any] = {"image_auroc": None, "pixel_auroc": None, "aupro": None, "f1_max": None,
                               "f1_threshold": None, "n_good": None, "n_defect": None, "n_without_mask": None}
    at_policy, per_defect = None, []
    figures: dict[str, str | None] = {"roc": None, "pr": None, "pro": None}
    names = [p.relative_to(folder).as_posix() if folder in p.parents else p.name for p in paths]
    if label_names is not None:
        labels = np.array([r.is_anomalous for r in records], bool)
        finite = np.isfinite(scores)
        both = labels[finite].any() and not labels[finite].all()
        auroc = image_auroc(labels[finite], scores[finite]) if both else None
        metrics.update(image_auroc=auroc, n_good=int((~labels).sum()), n_defect=int(labels.sum()))
        at_policy = policy_report(labels, verdicts) if policy.ng_threshold is not None else None
        per_defect = per_defect_recall(records, verdicts) if policy.ng_threshold is not None else []
        figures.update(image_plots(labels, scores, policy, auroc))
        notes.append("Labels come from the folder names (good/ and one folder per defect type); there are no "
                     "ground-truth masks, so pixel AUROC and AUPRO are not computed.")
        escapes, alarms = worst_indices(labels, verdicts, scores)
        picks = {"escapes": escapes, "false_alarms": alarms}
    else:
        notes.append("No labels: the scored folder is not split into good/ and defect-type folders, so recall, "
                     "false-alarm rate and AUROC cannot be computed. The report shows scores and decisions only.")
        figures["histogram"] = _b64(plots.histogram_png([("all images", scores, plots.ALL_COLOUR)],
                                                        policy.ng_threshold, policy.ok_threshold,
                                                        title="Image scores and thresholds"))
        flagged = np.flatnonzero(verdicts != "OK")
        picks = {"escapes": [], "false_alarms": [],
                 "highest": [int(i) for i in flagged[np.argsort(-np.nan_to_num(scores[flagged], nan=np.inf))][:6]]}
    step(1)
    cancel.raise_if_cancelled()
    gallery: dict[str, list[dict[str, Any]]] = {}
    for key, idx in picks.items():
        items = []
        for i in idx:
            stem = (stems or {}).get(rows[i]["path"]) or names[i].rsplit(".", 1)[0].replace("/", "__")
            overlay = run_dir / overlay_name(stem)
            png = file_base64(overlay) if overlay.is_file() else ""
            items.append(GalleryItem(names[i], records[i].label, float(scores[i]), str(verdicts[i]), png,
                                     "" if png else "no overlay was written for this image"))
        gallery[key] = _items(items)
    step(2)
    decisions = Counter(str(v) for v in verdicts)
    run_info: dict[str, Any] = {}
    run_file = run_dir / "predict_run.json"
    if run_file.is_file():
        try:
            run_info = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            run_info = {}
    timings = {"report_seconds": time.perf_counter() - started}
    if scoring_seconds is not None:
        timings["scoring_seconds"] = scoring_seconds
    params = dict(meta.get("params", {}))
    record = run_record(seed=params.get("seed"), device="onnxruntime (CPU)",
                        dataset_hash=file_list_hash(records, folder), timings=timings,
                        extra={"scores_csv": str(csv_path), "model_fingerprint": run_info.get("model", "")})
    return {
        "kind": "folder",
        "title": f"Inspection report: {meta.get('method', '?')} on {folder.name}",
        "notes": notes,
        "warning": None,
        "decisions": {k: decisions.get(k, 0) for k in ("OK", "REVIEW", "NG", "error")},
        "dataset": {**dataset_summary(records, folder.name, folder, "labelled folders" if label_names else "folder"),
                    "n_unreadable": len(unreadable),
                    "unreadable": [(r["path"], r.get("error") or r.get("note") or "") for r in unreadable[:20]]},
        "model": {"dir": str(export_dir), "method": meta.get("method"), "params": params,
                  "backbone": meta.get("backbone"), "input_size": (meta.get("input") or {}).get("size"),
                  "training": dict(meta.get("training", {})), "created_at": meta.get("created_at"),
                  "calibrations": sorted((meta.get("calibrations") or {}).keys())},
        "policy": policy_summary(policy, meta.get("active_calibration")),
        "metrics": metrics,
        "at_policy": at_policy,
        "per_defect": per_defect,
        "plots": figures,
        "gallery": gallery,
        "record": record,
    }


__all__ = ["dataset_summary", "folder_labels", "folder_report_context", "model_report_context", "per_defect_recall"]
