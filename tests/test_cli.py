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
