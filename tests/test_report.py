"""The inspection report: its numbers are the metrics core's, it reuses the prediction cache,
it refuses to overwrite what is not a report, the CLI command, and it renders in Chromium.

A tiny PaDiM (64 px) is trained once on the first sample category and given a deliberately
poor policy (NG at the median score, a REVIEW band below it), so the report has escapes,
false alarms and REVIEW decisions to show.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from workbench.core.calibration.policy import load_policy, write_policy
from workbench.core.report import (ReportTargetError, check_report_target, folder_report_context, is_report_file,
                                   model_report_context, render_html, write_html)
from workbench.core.report.context import folder_labels


@pytest.fixture(scope="module")
def report_model(tmp_path_factory, tiny_dataset) -> Path:
    """A tiny PaDiM with its prediction cache and a policy that lets defects escape."""
    from workbench.core.jobs import CancelToken
    from workbench.core.predictions import load_predictions
    from workbench.core.workflows import train_evaluate_save

    model_dir = tmp_path_factory.mktemp("report") / "padim"
    train_evaluate_save(tiny_dataset, "padim", {"image_size": 64}, model_dir, cancel=CancelToken())
    scores = np.sort(load_predictions(model_dir, tiny_dataset).scores)
    ng, ok = float(np.quantile(scores, 0.6)), float(np.quantile(scores, 0.4))
    write_policy(model_dir, load_policy(model_dir).replace(ng_threshold=ng, ok_threshold=ok, source="test"))
    return model_dir


class _Metrics(HTMLParser):
    """data-key -> data-value of every number the report shows."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-key" in a:
            self.values[a["data-key"]] = a.get("data-value") or ""


def shown_numbers(html: str) -> dict[str, str]:
    parser = _Metrics()
    parser.feed(html)
    return parser.values


def test_report_numbers_equal_the_metrics_core(report_model, tiny_dataset, tmp_path):
    from workbench.core.workflows import evaluate_at_policy

    core = evaluate_at_policy(report_model, tiny_dataset)
    ctx = model_report_context(report_model, tiny_dataset)
    ev = core.evaluation
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "n_good", "n_defect"):
        assert ctx["metrics"][key] == getattr(ev, key), key
    assert ctx["at_policy"] == core.report
    html = write_html(ctx, tmp_path / "r.html").read_text(encoding="utf-8")
    shown = shown_numbers(html)
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max"):
        assert float(shown[key]) == getattr(ev, key), key
    for truth in ("good", "defect"):
        for d in ("OK", "REVIEW", "NG"):
            assert int(shown[f"confusion.{truth}.{d}"]) == core.report["confusion"][truth][d]
    for key, iv in core.report["rates"].items():
        if iv is not None:
            assert float(shown[key]) == iv["estimate"], key
    # the deliberately poor policy lets defects escape: the gallery shows them, lowest score first
    escaped = core.report["confusion"]["defect"]["OK"]
    assert escaped > 0 and len(ctx["gallery"]["escapes"]) == min(escaped, 6)
    assert all(item["png_base64"] and item["verdict"] == "OK" and item["label"] != "good"
               for item in ctx["gallery"]["escapes"])
    assert [i["score"] for i in ctx["gallery"]["escapes"]] == sorted(i["score"] for i in ctx["gallery"]["escapes"])
    # and an NG threshold below the highest good score raises false alarms
    good = np.sort(ev.scores[[not r.is_anomalous for r in ev.records]])
    alarmed = model_report_context(report_model, tiny_dataset,
                                   policy=load_policy(report_model).replace(ng_threshold=float(good[-2]),
                                                                            ok_threshold=None))
    assert alarmed["at_policy"]["confusion"]["good"]["NG"] >= 2
    assert [i["verdict"] for i in alarmed["gallery"]["false_alarms"]] == ["NG"] * len(alarmed["gallery"]["false_alarms"])
    assert len(alarmed["gallery"]["false_alarms"]) >= 2
    # per-defect recall adds up to the policy report's recall
    rows = [r for r in ctx["per_defect"] if not r["is_good"]]
    assert sum(r["caught"] for r in rows) == core.report["rates"]["recall"]["k"]
    assert {r["label"] for r in rows} == set(tiny_dataset.defect_types)
    # self-contained: every image is embedded, nothing is fetched
    assert re.findall(r'src="([^"]+)"', html) and all(s.startswith("data:image/png;base64,")
                                                      for s in re.findall(r'src="([^"]+)"', html))
    for plot in ("roc", "pr", "pro", "histogram"):
        assert ctx["plots"][plot], plot
    assert len(ctx["record"]["dataset_hash"]) == 64 and ctx["record"]["seed"] is not None
    assert ctx["record"]["versions"]["numpy"] == np.__version__


def test_report_reuses_the_prediction_cache(report_model, tiny_dataset, monkeypatch):
    import workbench.core.methods.package as package

    def no_model(*args, **kwargs):
        raise AssertionError("the report predicted again although the cache matches")

    monkeypatch.setattr(package, "load_model", no_model)
    ctx = model_report_context(report_model, tiny_dataset)
    assert ctx["record"]["prediction_cache"] == "used"
    with pytest.raises(AssertionError, match="predicted again"):
        model_report_context(report_model, tiny_dataset, use_cache=False)


def test_named_calibration_and_unknown_name(report_model, tiny_dataset, tmp_path):
    from workbench.core.calibration import calibrate, save_calibration
    from workbench.core.predictions import load_predictions

    model = tmp_path / "m"
    shutil.copytree(report_model, model)
    evaluation = load_predictions(model, tiny_dataset)
    save_calibration(model, calibrate(evaluation, "max_f1", name="strict"), activate=False)
    ctx = model_report_context(model, tiny_dataset, calibration="strict")
    assert ctx["policy"]["name"] == "strict"
    assert ctx["policy"]["ng_threshold"] != load_policy(model).ng_threshold
    with pytest.raises(ValueError, match="no calibration named 'nope'.*strict"):
        model_report_context(model, tiny_dataset, calibration="nope")


def test_report_target_refuses_what_is_not_a_report(tmp_path):
    image = tmp_path / "part.html"
    image.write_text("<html><body>my notes</body></html>")
    with pytest.raises(ReportTargetError, match="not a workbench report"):
        check_report_target(image, (".html",))
    with pytest.raises(ReportTargetError, match="is a folder"):
        (tmp_path / "dir.html").mkdir()
        check_report_target(tmp_path / "dir.html", (".html",))
    with pytest.raises(ReportTargetError, match="must end in"):
        check_report_target(tmp_path / "r.png", (".html",))
    with pytest.raises(ReportTargetError, match="does not exist"):
        check_report_target(tmp_path / "missing" / "r.html", (".html",))
    assert image.read_text() == "<html><body>my notes</body></html>"


def test_folder_labels_from_layout(tmp_path):
    assert folder_labels([tmp_path / "good/a.png", tmp_path / "scratch/b.png"], tmp_path) == ["good", "scratch"]
    assert folder_labels([tmp_path / "a.png", tmp_path / "scratch/b.png"], tmp_path) is None  # one unplaced image
    assert folder_labels([tmp_path / "x/a.png", tmp_path / "y/b.png"], tmp_path) is None  # no good folder


def test_cli_report_html_and_pdf_and_refusals(report_model, tiny_dataset, tmp_path, capsys):
    from workbench.cli import main

    out, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    data = ["--data", str(tiny_dataset.root.parent), "--category", tiny_dataset.name]
    assert main(["report", "--model", str(report_model), *data, "--out", str(out), "--pdf", str(pdf), "-q"]) == 0
    assert is_report_file(out) and is_report_file(pdf) and pdf.read_bytes().startswith(b"%PDF")
    import os

    umask = os.umask(0)
    os.umask(umask)
    for written in (out, pdf):  # shared documents: not the atomic write's owner-only temporary mode
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask
    first = out.read_bytes()
    assert main(["report", "--model", str(report_model), *data, "--out", str(out), "-q"]) == 0  # a report: replaced
    assert out.read_bytes() != b"" and is_report_file(out) and first
    photo = tmp_path / "photo.html"
    photo.write_text("not a report")
    cases = [
        (["--model", str(tmp_path / "nope"), *data, "--out", str(tmp_path / "a.html")], "not a model package"),
        (["--model", str(report_model), "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "a.html")],
         "Dataset folder not found"),
        (["--model", str(report_model), *data, "--out", str(photo)], "not a workbench report"),
        (["--model", str(report_model), *data, "--out", str(tmp_path / "a.txt")], "must end in .html"),
        (["--model", str(report_model), *data, "--out", str(tmp_path / "a.html"), "--pdf", str(tmp_path / "a.html")],
         "must end in .pdf"),
        (["--model", str(report_model), *data, "--out", str(tmp_path / "a.html"), "--calibration", "nope"],
         "no calibration named 'nope'"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(["report", *argv, "-q"]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert photo.read_text() == "not a report" and not (tmp_path / "a.html").exists()


def test_cli_report_of_an_exported_package(report_model, tiny_dataset, tmp_path, capsys):
    """An exported package scores the folder with onnxruntime; labels come from the folder names."""
    from workbench.cli import main

    export = tmp_path / "export"
    assert main(["export", "--model", str(report_model), "--format", "onnx", "--out", str(export)]) == 0
    out = tmp_path / "onnx.html"
    test_dir = Path(tiny_dataset.root) / "test"
    assert main(["report", "--model", str(export), "--data", str(test_dir), "--out", str(out), "-q"]) == 0
    html = out.read_text(encoding="utf-8")
    shown = shown_numbers(html)
    n_test = len(tiny_dataset.test)
    assert sum(int(shown[f"decisions.{k}"]) for k in ("OK", "REVIEW", "NG", "error")) == n_test
    assert "training dataset (its test split) are not part of it" in html
    assert int(shown["n_defect"]) == sum(r.is_anomalous for r in tiny_dataset.test)


def test_folder_report_without_labels_says_so(report_model, tiny_dataset, tmp_path):
    from workbench.core.export import export_onnx
    from workbench.core.methods.package import load_model
    from workbench.core.workflows import expand_images, predict_images

    export = export_onnx(load_model(report_model, device="cpu"), tmp_path / "export", package_dir=report_model)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, r in enumerate(tiny_dataset.test[:6]):
        shutil.copy(r.path, flat / f"{i}.png")
    predict_images(export, expand_images([flat]), tmp_path / "run")
    ctx = folder_report_context(export, flat, tmp_path / "run")
    assert ctx["metrics"]["image_auroc"] is None and ctx["at_policy"] is None
    assert any(note.startswith("No labels") for note in ctx["notes"])
    assert sum(ctx["decisions"].values()) == 6
    html = render_html(ctx)
    assert "No labels" in html and ctx["plots"]["histogram"]
    assert all(item["png_base64"] for item in ctx["gallery"]["highest"])  # the run's own overlays


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="headless Chromium is not installed")
def test_report_renders_in_headless_chromium(report_model, tiny_dataset, tmp_path):
    import cv2

    html = write_html(model_report_context(report_model, tiny_dataset), tmp_path / "r.html")
    shot = tmp_path / "shot.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,2400", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=180, check=False)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1100)
    # the plots' blue curves and the table text are drawn: the page is far from blank
    assert (image < 128).mean() > 0.005 and image.std() > 20
