"""Finite or refused (issue "Reliability round 2"): a NaN never passes a part as OK.

Decisions are ``score >= threshold``, which is False for NaN: a NaN threshold, parameter or
normalisation value, or a NaN score, would judge every part OK. Each is refused with a clear
message, or (a score at predict time) recorded as an ``error`` row with a non-zero exit code.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from workbench.cli import EXIT_SOME_IMAGES_FAILED, main
from workbench.core.batch_predict import predict_folder
from workbench.core.files import file_sha256
from workbench.core.formats import ModelPackageError
from workbench.core.methods import METHODS, create_method
from workbench.core.methods.package import load_model, save_model

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity"]


@pytest.fixture(scope="module")
def padim():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(60, 200, (48, 48, 3), dtype=np.uint8) for _ in range(4)]
    model = create_method("padim", device="cpu", image_size=64, batch_size=8).fit(imgs)
    model.metadata["thresholds"] = {"image": {"value": 1.0}}
    return model


@pytest.mark.parametrize("argv", [
    ["calibrate", "--model", "m", "--data", "d", "--threshold", "nan"],
    ["calibrate", "--model", "m", "--data", "d", "--threshold", "inf"],
    ["calibrate", "--model", "m", "--data", "d", "--target-fpr", "nan"],
    ["calibrate", "--model", "m", "--data", "d", "--target-fpr", "1.5"],
    ["calibrate", "--model", "m", "--data", "d", "--target-recall=-0.1"],
    ["calibrate", "--model", "m", "--data", "d", "--min-area=-3"],
    ["predict", "--model", "m", "x.png", "--out", "o", "--threshold", "nan"],
    ["predict", "--model", "m", "x.png", "--out", "o", "--threshold=-inf"],
    ["predict", "--model", "m", "x.png", "--out", "o", "--batch-size", "0"],
])
def test_cli_refuses_non_finite_or_out_of_range_numbers_before_doing_anything(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "expected a" in err and ("finite" in err or "between 0 and 1" in err or ">=" in err)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_float_parameter_refuses_non_finite_values(method):
    floats = [p for p in METHODS[method].schema() if p.kind == "float"]
    ints = [p for p in METHODS[method].schema() if p.kind == "int"]
    assert floats
    for p in floats:
        for text in NON_FINITE:
            with pytest.raises(ValueError, match=f"Parameter '{p.name}' must be float \\(a finite number\\)"):
                p.coerce(text)
            with pytest.raises(ValueError, match=p.name):
                p.coerce(float(text))
    for p in ints:
        with pytest.raises(ValueError, match=p.name):  # was OverflowError for an infinite float
            p.coerce(float("inf"))


def test_train_with_a_nan_parameter_is_bad_input(tmp_path, capsys):
    data = tmp_path / "data" / "good"
    data.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(data / f"{i}.png"), np.full((32, 32, 3), 40 * i, np.uint8))
    argv = ["train", "--data", str(data.parent), "--method", "padim", "--param", "regularization=nan",
            "--out", str(tmp_path / "m"), "-q"]
    assert main(argv) == 2
    assert "Parameter 'regularization' must be float (a finite number), got 'nan'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def _edit_meta(package: Path, **changes) -> None:
    meta = json.loads((package / "model.json").read_text())
    for dotted, value in changes.items():
        node = meta
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    (package / "model.json").write_text(json.dumps(meta))  # json writes NaN as the bare word NaN


@pytest.mark.parametrize("field, value, message", [
    ("input__mean", [float("nan"), 0.4, 0.4], "'input.mean.0': Input should be a finite number"),
    ("input__std", [0.2, 0.0, 0.2], "'input.std.1': Input should be greater than 0"),
    ("thresholds__image__value", float("nan"), "'thresholds.image.value': Input should be a finite number"),
    ("thresholds__image__value", "0.5", "'thresholds.image.value': Input should be a valid number"),
    ("params__regularization", float("inf"), "parameter 'regularization' must be a finite number"),
])
def test_non_finite_numbers_in_a_model_package_are_refused(padim, tmp_path, field, value, message):
    package = save_model(padim, tmp_path / "m")
    _edit_meta(package, **{field: value})
    with pytest.raises(ModelPackageError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_model(package)


class NanScorer:
    """Scores NaN for dark images (as a model with broken weights would), brightness otherwise."""

    metadata = {"score_stats": {"pixel": {"p50": 50.0, "max": 150.0}}}
    params = {"batch_size": 2}

    def predict(self, images):
        maps = np.stack([cv2.resize(im.mean(axis=2).astype(np.float32), (8, 8)) for im in images])
        scores = maps.reshape(len(images), -1).mean(axis=1)
        scores[scores < 50] = np.nan
        return scores, maps


def test_a_non_finite_score_is_an_error_row_never_ok(tmp_path):
    items = []
    for i, value in enumerate([10, 200, 30, 120]):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.full((16, 16, 3), value, np.uint8))
        items.append((path, path.stem))
    summary = predict_folder(NanScorer(), items, tmp_path / "out", fingerprint="m", threshold=100.0)
    with open(tmp_path / "out" / "scores.csv", newline="", encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert rows["0.png"]["decision"] == rows["2.png"]["decision"] == "error"
    assert "non-finite score" in rows["0.png"]["error"] and rows["0.png"]["score"] == ""
    assert rows["1.png"]["decision"] == "NG" and rows["3.png"]["decision"] == "NG"
    assert summary.failed == 2 and summary.scored == 2 and len(summary.problems) == 2
    with pytest.raises(ValueError, match="finite"):
        predict_folder(NanScorer(), items, tmp_path / "out2", fingerprint="m", threshold=math.nan)


def test_cli_predict_with_nan_scores_exits_non_zero(padim, tmp_path, capsys):
    package = save_model(padim, tmp_path / "m")
    tensors = load_file(str(package / "weights.safetensors"))
    tensors["mean"] = tensors["mean"] * float("nan")  # broken weights, checksum fixed up
    save_file(tensors, str(package / "weights.safetensors"))
    _edit_meta(package, weights_sha256=file_sha256(package / "weights.safetensors"))
    image = tmp_path / "part.png"
    cv2.imwrite(str(image), np.full((48, 48, 3), 128, np.uint8))
    assert main(["predict", "--model", str(package), str(image), "--out", str(tmp_path / "o"), "-q"]) \
        == EXIT_SOME_IMAGES_FAILED
    captured = capsys.readouterr()
    assert "1 failed (decision 'error')" in captured.out and "could not be scored" in captured.err
    with open(tmp_path / "o" / "scores.csv", newline="", encoding="utf-8") as fh:
        assert [r["decision"] for r in csv.DictReader(fh)] == ["error"]


def test_calibrate_refuses_a_non_finite_target():
    from workbench.core.calibration import calibrate

    with pytest.raises(ValueError, match="finite"):
        calibrate(None, "manual", float("nan"))  # type: ignore[arg-type]


def test_a_model_with_non_finite_statistics_is_never_saved(padim, tmp_path):
    padim.metadata["score_stats"] = {"image": {"max": float("nan")}}
    try:
        with pytest.raises(ModelPackageError, match="'score_stats.image.max'.*Nothing was saved"):
            save_model(padim, tmp_path / "m")
    finally:
        del padim.metadata["score_stats"]
    assert not (tmp_path / "m").exists() and list(tmp_path.iterdir()) == []


def test_a_calibration_with_a_non_finite_pixel_threshold_is_never_saved(padim, tmp_path):
    from workbench.core.calibration.calibrate import Calibration, save_calibration

    package = save_model(padim, tmp_path / "m")
    before = (package / "model.json").read_bytes()
    cal = Calibration(name="x", preset="manual", target=1.0, image_threshold=1.0, pixel_threshold=float("nan"),
                      min_defect_area=0, normalization="raw", created_by="t", created_at="now", data={},
                      confusion={}, intervals={})
    with pytest.raises(ModelPackageError, match="pixel_threshold.*Nothing was saved"):
        save_calibration(package, cal)
    assert (package / "model.json").read_bytes() == before
