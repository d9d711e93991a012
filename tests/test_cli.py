"""The workbench command: end-to-end on a small copy of the sample data, and exit codes on bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from workbench.cli import EXIT_BAD_INPUT, main

FAST = ["--param", "image_size=64", "--param", "coreset_ratio=0.2"]


@pytest.fixture(scope="module")
def small_category(tmp_path_factory, sample_root, sample_categories) -> Path:
    """A copy of one sample category with 12 train, 4 good and 4 defective test images."""
    src = sample_root / sample_categories[0]
    dst = tmp_path_factory.mktemp("data") / sample_categories[0]
    for sub in ["train/good", "test/good"]:
        (dst / sub).mkdir(parents=True)
        for p in sorted((src / sub).glob("*.png"))[: 12 if sub.startswith("train") else 4]:
            shutil.copy(p, dst / sub / p.name)
    defect = sorted(d.name for d in (src / "test").iterdir() if d.name != "good")[0]
    (dst / "test" / defect).mkdir(parents=True)
    (dst / "ground_truth" / defect).mkdir(parents=True)
    for p in sorted((src / "test" / defect).glob("*.png"))[:4]:
        shutil.copy(p, dst / "test" / defect / p.name)
        shutil.copy(src / "ground_truth" / defect / f"{p.stem}_mask.png", dst / "ground_truth" / defect)
    return dst


def test_train_evaluate_predict(small_category, tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert main(["train", "--data", str(small_category), "--out", str(model_dir), "-q", *FAST]) == 0
    assert (model_dir / "model.json").is_file() and (model_dir / "weights.safetensors").is_file()

    metrics_path = tmp_path / "metrics.json"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(small_category),
                 "--json", str(metrics_path), "-q"]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert 0.0 <= metrics["image_auroc"] <= 1.0 and 0.0 <= metrics["aupro"] <= 1.0
    assert metrics["n_good"] == 4 and metrics["n_defect"] == 4

    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model_dir), str(small_category / "test"), "--out", str(out), "-q"]) == 0
    rows = list(csv.DictReader(open(out / "scores.csv", encoding="utf-8")))
    assert len(rows) == 8 and {r["decision"] for r in rows} <= {"OK", "NG"}
    assert len(list(out.glob("*_overlay.png"))) == 8
    assert "Scored 8 image(s)" in capsys.readouterr().out

    onnx_dir = tmp_path / "onnx"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(onnx_dir)]) == 0
    out_onnx = tmp_path / "pred_onnx"
    assert main(["predict", "--model", str(onnx_dir), str(small_category / "test"), "--out", str(out_onnx), "-q"]) == 0
    rows_onnx = list(csv.DictReader(open(out_onnx / "scores.csv", encoding="utf-8")))
    assert [r["decision"] for r in rows_onnx] == [r["decision"] for r in rows]
    for a, b in zip(rows, rows_onnx):
        assert float(a["score"]) == pytest.approx(float(b["score"]), rel=1e-4)

    # a run killed after three rows, mid-way through the fourth: the same command resumes
    csv_path = out_onnx / "scores.csv"
    lines = csv_path.read_bytes().splitlines(keepends=True)
    csv_path.write_bytes(b"".join(lines[:4]) + lines[4][:12])
    capsys.readouterr()
    predict_onnx = ["predict", "--model", str(onnx_dir), str(small_category / "test"), "--out", str(out_onnx), "-q"]
    assert main(predict_onnx) == 0
    assert "Scored 5 image(s), 3 already done earlier" in capsys.readouterr().out
    resumed = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    assert sorted(r["path"] for r in resumed) == sorted(r["path"] for r in rows_onnx)
    # a different threshold would mix decisions: refused, until --restart
    assert main([*predict_onnx, "--threshold", "0.5"]) == 2
    assert "another threshold" in capsys.readouterr().err
    assert main([*predict_onnx, "--threshold", "0.5", "--restart"]) == 0
    assert "Scored 8 image(s) (threshold 0.5" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "/does/not/exist", "--out", "x"], "not found"),
    (["train", "--data", "{data}", "--out", "{tmp}/m", "--method", "nosuch"], "Unknown method"),
    (["train", "--data", "{data}", "--out", "{tmp}/m", "--param", "image_size=5"], "image_size"),
    (["train", "--data", "{data}", "--out", "{tmp}/m", "--param", "oops"], "NAME=VALUE"),
    (["evaluate", "--model", "{tmp}", "--data", "{data}"], "model.json is missing"),
    (["predict", "--model", "{tmp}/none", "{data}", "--out", "{tmp}/o"], "Model folder not found"),
])
def test_bad_input_exits_with_clear_message(argv, message, small_category, tmp_path, capsys):
    argv = [a.format(data=small_category, tmp=tmp_path) for a in argv]
    assert main(argv) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_empty_dataset_folder_is_bad_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "m")]) == EXIT_BAD_INPUT
    assert "error:" in capsys.readouterr().err


def test_methods_lists_registry(capsys):
    assert main(["methods", "-v"]) == 0
    out = capsys.readouterr().out
    assert "patchcore" in out and "coreset_ratio" in out


def _rows(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(out / "scores.csv", encoding="utf-8")))


def test_policy_band_min_area_and_ignore_region_through_cli_and_onnx(small_category, tmp_path, capsys):
    """calibrate (band, minimum area, ignore mask stored in the model) -> predict -> export ->
    predict on onnxruntime -> evaluate at the policy: one rule, the same decisions everywhere."""
    import cv2
    import numpy as np

    from workbench.core.calibration import load_policy

    model_dir = tmp_path / "model"
    assert main(["train", "--data", str(small_category), "--out", str(model_dir), "-q", *FAST]) == 0
    base = tmp_path / "base"
    assert main(["predict", "--model", str(model_dir), str(small_category / "test"), "--out", str(base), "-q",
                 "--no-overlays"]) == 0
    scores = np.array([float(r["score"]) for r in _rows(base)])
    ng, ok = float(np.quantile(scores, 0.75)), float(np.quantile(scores, 0.25))
    calib = ["calibrate", "--model", str(model_dir), "--data", str(small_category), "-q",
             "--threshold", str(ng), "--ok-threshold", str(ok), "--pixel", "good_max"]
    assert main([*calib, "--min-area", "0"]) == 0
    assert "REVIEW in between" in capsys.readouterr().out
    band = tmp_path / "band"
    assert main(["predict", "--model", str(model_dir), str(small_category / "test"), "--out", str(band), "-q"]) == 0
    rows = _rows(band)
    policy = load_policy(model_dir)
    assert [r["decision"] for r in rows] == [policy.verdict(float(r["score"])) for r in rows]
    assert {r["decision"] for r in rows} == {"OK", "REVIEW", "NG"}
    assert any(int(r["defect_area_px"]) > 0 for r in rows if r["decision"] == "NG")

    # the minimum area (pixels of the original image) is applied to the area and region count
    assert main([*calib, "--min-area", "100000"]) == 0
    big = tmp_path / "big"
    assert main(["predict", "--model", str(model_dir), str(small_category / "test"), "--out", str(big), "-q"]) == 0
    assert [r["decision"] for r in _rows(big)] == [r["decision"] for r in rows]
    assert all(r["defect_area_px"] == "0" and r["regions"] == "0" for r in _rows(big))
    # ... and to the outline drawn on the overlay (red contour pixels appear only with min area 0)
    outlined = next(r for r in rows if r["decision"] == "NG" and int(r["defect_area_px"]) > 0)
    stem = Path(outlined["path"]).relative_to(small_category / "test").with_suffix("").as_posix().replace("/", "__")
    def red(folder: Path) -> int:
        bgr = cv2.imread(str(folder / f"{stem}_overlay.png"))
        return int(((bgr[:, :, 2] == 255) & (bgr[:, :, 1] == 0) & (bgr[:, :, 0] == 0)).sum())
    assert red(band) > 0 and red(big) == 0
    onnx_big = tmp_path / "onnx_big"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(onnx_big)]) == 0
    big_onnx = tmp_path / "big_onnx"
    assert main(["predict", "--model", str(onnx_big), str(small_category / "test"), "--out", str(big_onnx), "-q"]) == 0
    assert all(r["defect_area_px"] == "0" and r["regions"] == "0" for r in _rows(big_onnx))
    assert red(big_onnx) == 0

    # export: the ONNX package carries the policy and decides identically on onnxruntime
    assert main([*calib, "--min-area", "0"]) == 0
    onnx_dir = tmp_path / "onnx"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(onnx_dir)]) == 0
    assert load_policy(onnx_dir).fingerprint() == load_policy(model_dir).fingerprint()
    via_onnx = tmp_path / "via_onnx"
    assert main(["predict", "--model", str(onnx_dir), str(small_category / "test"), "--out", str(via_onnx), "-q"]) == 0
    onnx_rows = _rows(via_onnx)
    assert [r["decision"] for r in onnx_rows] == [r["decision"] for r in rows]
    assert [r["regions"] for r in onnx_rows] == [r["regions"] for r in rows]
    for a, b in zip(rows, onnx_rows):
        assert int(a["defect_area_px"]) == pytest.approx(int(b["defect_area_px"]), rel=0.02, abs=3)

    # evaluate reports the confusion matrix and rates at the active policy
    report_path = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(small_category), "-q",
                 "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "At the active policy" in out and "sent to REVIEW" in out and "95% CI" in out
    at = json.loads(report_path.read_text())["at_policy"]
    confusion = at["confusion"]
    assert sum(confusion["good"].values()) == 4 and sum(confusion["defect"].values()) == 4
    assert confusion["good"]["REVIEW"] + confusion["defect"]["REVIEW"] == sum(r["decision"] == "REVIEW" for r in rows)
    assert at["rates"]["review_rate"]["n"] == 8

    # a defect inside an ignore region is OK; the ignore mask is stored. This tiny model's maps
    # are warm over most of a defective image, so the ignore region covers its warmest 75%.
    from workbench.core.data import read_image
    from workbench.core.methods.package import load_model

    defect_rows = [r for r in rows if "good" not in Path(r["path"]).parts and r["decision"] == "NG"]
    assert defect_rows, "the sample needs a defective image over the NG threshold"
    target = Path(defect_rows[0]["path"])
    image = read_image(target)
    _, maps = load_model(model_dir).predict([image])
    full = cv2.resize(maps[0], (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    ignore = (full >= np.quantile(full, 0.25)).astype(np.uint8) * 255
    ignore_png = tmp_path / "ignore.png"
    cv2.imwrite(str(ignore_png), ignore)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(target, alone / target.name)
    run_only = tmp_path / "ignored_run"
    assert main(["predict", "--model", str(model_dir), str(alone), "--out", str(run_only), "-q",
                 "--ignore", str(ignore_png)]) == 0
    ignored = _rows(run_only)[0]
    assert ignored["decision"] == "OK" and ignored["defect_area_px"] == "0"
    assert float(ignored["score"]) < float(defect_rows[0]["score"])
    assert main([*calib, "--ignore", str(ignore_png)]) == 0
    assert (model_dir / "ignore_mask.png").is_file()
    stored = tmp_path / "stored"
    assert main(["predict", "--model", str(model_dir), str(alone), "--out", str(stored), "-q"]) == 0
    assert _rows(stored)[0]["decision"] == "OK"
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(tmp_path / "onnx2")]) == 0
    assert (tmp_path / "onnx2" / "ignore_mask.png").is_file()
    stored_onnx = tmp_path / "stored_onnx"
    assert main(["predict", "--model", str(tmp_path / "onnx2"), str(alone), "--out", str(stored_onnx), "-q"]) == 0
    assert _rows(stored_onnx)[0]["decision"] == "OK"


def test_guaranteed_calibration_refuses_with_too_few_good_images(small_category, tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert main(["train", "--data", str(small_category), "--out", str(model_dir), "-q", *FAST]) == 0
    before = (model_dir / "model.json").read_bytes()
    assert main(["calibrate", "--model", str(model_dir), "--data", str(small_category), "-q",
                 "--target-fpr", "0.01", "--confidence", "0.95"]) == EXIT_BAD_INPUT
    assert "needs at least 299 good images" in capsys.readouterr().err
    assert (model_dir / "model.json").read_bytes() == before  # nothing stored
