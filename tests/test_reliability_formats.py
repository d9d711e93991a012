"""One schema for every JSON the tool reads, and a results CSV whose resume survives damage
(issue "Reliability round 2").

Exported packages (``model.json`` with an ``onnx`` section) of the wrong shape or types, or
pointing outside their folder, raise ``ExportedPackageError``; training packages the same
with ``ModelPackageError``; never a traceback. Property-based tests (hypothesis) mutate
model.json, exported model.json and scores.csv; the ``slow`` fuzz runs 1,000 generated files
per kind and allows only the documented error types.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workbench.cli import EXIT_BAD_INPUT, main  # noqa: E402
from workbench.core.batch_predict import predict_folder  # noqa: E402
from workbench.core.export import OnnxInferencer, export_onnx  # noqa: E402
from workbench.core.export.runtime import read_export  # noqa: E402
from workbench.core.files import file_sha256  # noqa: E402
from workbench.core.formats import ExportedPackageError, ModelPackageError, PredictRunError  # noqa: E402
from workbench.core.methods import create_method  # noqa: E402
from workbench.core.methods import package as package_mod  # noqa: E402
from workbench.core.methods.package import load_model, save_model  # noqa: E402
from workbench.core.results_csv import CSV_FIELDS, row_check  # noqa: E402

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FUZZ_1000 = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                            HealthCheck.filter_too_much, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def padim():
    rng = np.random.default_rng(0)
    model = create_method("padim", device="cpu", image_size=64, batch_size=8).fit(
        [rng.integers(60, 200, (48, 48, 3), dtype=np.uint8) for _ in range(4)])
    model.metadata.update(score_stats={"image": {"n": 4, "mean": 1.0, "std": 0.1, "min": 0.8, "p50": 1.0, "max": 1.2},
                                       "pixel": {"p01": 0.1, "p50": 0.5, "p99": 0.9, "p999": 1.0, "max": 1.1}},
                          thresholds={"image": {"value": 1.2, "source": "test"}})
    return model


@pytest.fixture(scope="module")
def exported(padim, tmp_path_factory) -> Path:
    return export_onnx(padim, tmp_path_factory.mktemp("exp") / "onnx")


@pytest.fixture
def export_copy(exported, tmp_path) -> Path:
    return Path(shutil.copytree(exported, tmp_path / "onnx"))


def edit(folder: Path, change) -> None:
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps(change(meta)))


def set_in(meta: dict, dotted: str, value) -> dict:
    node = meta
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return meta


# ----------------------------------------------------------------------------- exported packages


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], "'(top level)': Input should be a valid dictionary"),
    (lambda m: set_in(m, "input", None), "'input'"),
    (lambda m: set_in(m, "input.size", None), "'input' must give size"),
    (lambda m: set_in(m, "input.size", [0, 0]), "'input.size.0': Input should be greater than 0"),
    (lambda m: set_in(m, "input.mean", ["a", 0.4, 0.4]), "'input.mean.0': Input should be a valid number"),
    (lambda m: set_in(m, "input.mean", [math.nan, 0.4, 0.4]), "'input.mean.0': Input should be a finite number"),
    (lambda m: set_in(m, "input.std", None), "'input' must give std"),
    (lambda m: set_in(m, "thresholds", "high"), "'thresholds'"),
    (lambda m: set_in(m, "thresholds.image.value", [1]), "'thresholds.image.value'"),
    (lambda m: set_in(m, "calibrations", {"default": 5}), "'calibrations.default'"),
    (lambda m: set_in(m, "calibrations", {"d": {"image_threshold": "high"}}), "'calibrations.d.image_threshold'"),
    (lambda m: set_in(m, "score_stats.pixel.max", math.inf), "'score_stats.pixel.max'"),
    (lambda m: set_in(m, "params.batch_size", 0), "'batch_size': Input should be greater than 0"),
    (lambda m: set_in(m, "onnx", "model.onnx"), "'onnx'"),
    (lambda m: set_in(m, "onnx.sha256", None), "'onnx.sha256'"),
    (lambda m: set_in(m, "format_version", "1"), "'format_version'"),
])
def test_exported_model_json_of_the_wrong_shape_is_refused(export_copy, change, message, capsys, tmp_path):
    edit(export_copy, change)
    with pytest.raises(ExportedPackageError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        OnnxInferencer(export_copy)
    assert str(export_copy / "model.json") in str(err.value) and "Export the model again" in str(err.value)
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 99, np.uint8))
    assert main(["predict", "--model", str(export_copy), str(image), "--out", str(tmp_path / "o"), "-q"]) \
        == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_an_onnx_path_outside_the_package_is_never_followed(export_copy, tmp_path, where):
    outside = tmp_path / "elsewhere" / "evil.onnx"
    outside.parent.mkdir()
    shutil.copy(export_copy / "model.onnx", outside)  # a loadable graph, checksum matching
    if where == "symlink":
        os.symlink(outside, export_copy / "link.onnx")
    target = {"parent": "../elsewhere/evil.onnx", "absolute": str(outside), "symlink": "link.onnx"}[where]
    edit(export_copy, lambda m: set_in(m, "onnx.file", target))
    with pytest.raises(ExportedPackageError, match="'onnx.file' must name a file inside the package folder"):
        OnnxInferencer(export_copy)


def test_a_valid_export_still_loads_and_scores(export_copy):
    scorer = OnnxInferencer(export_copy)
    scores, maps = scorer.predict([np.full((40, 40, 3), 120, np.uint8)])
    assert scores.shape == (1,) and np.isfinite(scores).all() and maps.shape == (1, 64, 64)


# ----------------------------------------------------------------------------- training packages


@pytest.mark.parametrize("change, message", [
    (lambda m: set_in(m, "thresholds", [1.0]), "'thresholds'"),
    (lambda m: set_in(m, "thresholds.image", {"value": "0.7"}), "'thresholds.image.value'"),
    (lambda m: set_in(m, "calibrations", {"strict": "0.9"}), "'calibrations.strict'"),
    (lambda m: set_in(m, "calibrations", [{"image_threshold": 1}]), "'calibrations'"),
    (lambda m: set_in(m, "input.size", [0, 0]), "'input.size.0': Input should be greater than 0"),
    (lambda m: set_in(m, "input.size", None) and set_in(m, "input.mean", None), None),  # optional: still loads
    (lambda m: set_in(m, "score_stats.image.max", None) and set_in(m, "score_stats", {"image": None}), None),
    (lambda m: set_in(m, "score_stats", {"pixel": {"p50": math.nan}}), "'score_stats.pixel.p50'"),
    (lambda m: set_in(m, "backbone.weights_sha256", 5), "'backbone' must hold"),
])
def test_training_model_json_of_the_wrong_types_is_refused(padim, tmp_path, change, message):
    package = save_model(padim, tmp_path / "m")
    edit(package, lambda m: change(m) or m)
    if message is None:
        assert load_model(package, verify=False).name == "padim"
        return
    with pytest.raises(ModelPackageError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_model(package)
    assert str(package) in str(err.value)


def test_a_package_from_before_the_schema_still_loads(padim, tmp_path):
    """Older packages lack later optional keys (thresholds, score statistics, input mean/std)."""
    package = save_model(padim, tmp_path / "m")
    edit(package, lambda m: {k: v for k, v in m.items()
                             if k not in ("thresholds", "score_stats", "workbench_version", "created_at")}
         | {"input": {"size": m["input"]["size"]}})
    assert load_model(package).name == "padim"


# ----------------------------------------------------------------------------- properties: JSON

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                          max_leaves=8)


def key_paths(meta, prefix=()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(meta, dict):
        for k, v in meta.items():
            paths += key_paths(v, (*prefix, k))
    elif isinstance(meta, list):
        for i, v in enumerate(meta[:3]):
            paths += key_paths(v, (*prefix, i))
    return paths


def mutations(template: dict):
    """A template with one to three of its values (at any depth) replaced, deleted, or the whole file replaced."""
    paths = key_paths(template)

    def apply(changes) -> object:
        meta = copy.deepcopy(template)
        for path, value, delete in changes:
            node = meta
            try:
                for key in path[:-1]:
                    node = node[key]
                if delete and isinstance(node, dict):
                    node.pop(path[-1], None)
                else:
                    node[path[-1]] = value
            except (KeyError, IndexError, TypeError):
                pass  # an earlier change removed this branch
        return meta

    change = st.tuples(st.sampled_from(paths), json_value, st.booleans())
    return st.one_of(st.lists(change, min_size=1, max_size=3).map(apply), json_value)


def all_numbers_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_numbers_finite(v) for k, v in value.items() if k != "params")
    if isinstance(value, list):
        return all(all_numbers_finite(v) for v in value)
    return True


@pytest.fixture(scope="module")
def package_template(padim, tmp_path_factory) -> tuple[Path, dict]:
    package = save_model(padim, tmp_path_factory.mktemp("pkg") / "m")
    meta = json.loads((package / "model.json").read_text())
    meta["calibrations"] = {"default": {"name": "default", "preset": "manual", "target": 1.0, "image_threshold": 1.0,
                                       "pixel_threshold": 0.5, "min_defect_area": 0, "normalization": "raw"}}
    return package, meta


def check_model_json(package: Path, meta) -> None:
    (package / "model.json").write_text(json.dumps(meta))
    try:
        checked = package_mod.read_metadata(package)
        package_mod._check_structure(package, checked)
    except ModelPackageError as exc:
        assert str(package) in str(exc)
        return
    assert all_numbers_finite(checked)


@pytest.fixture(scope="module")
def export_template(exported, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("exp-fuzz") / "onnx"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"graph")  # read_export checks the checksum, not the graph
    meta = json.loads((exported / "model.json").read_text())
    meta["onnx"]["sha256"] = file_sha256(folder / "model.onnx")
    return folder, meta


def check_export_json(folder: Path, meta) -> None:
    (folder / "model.json").write_text(json.dumps(meta))
    try:
        checked, onnx_path = read_export(folder)
    except ExportedPackageError as exc:
        assert str(folder) in str(exc)
        return
    assert folder.resolve() in onnx_path.resolve().parents and all_numbers_finite(checked)


@PROPERTY
@given(data=st.data())
def test_any_model_json_mutation_loads_or_raises_model_package_error(package_template, data):
    package, template = package_template
    check_model_json(package, data.draw(mutations(template)))


@PROPERTY
@given(data=st.data())
def test_any_exported_model_json_mutation_loads_or_raises_exported_package_error(export_template, data):
    folder, template = export_template
    check_export_json(folder, data.draw(mutations(template)))


# ----------------------------------------------------------------------------- properties: CSV resume


class MeanScorer:
    metadata = {"score_stats": {"pixel": {"p50": 50.0, "max": 150.0}}}
    params = {"batch_size": 4}

    def __init__(self) -> None:
        self.seen = 0

    def predict(self, images):
        self.seen += len(images)
        maps = np.stack([cv2.resize(im.mean(axis=2).astype(np.float32), (4, 4)) for im in images])
        return maps.reshape(len(images), -1).mean(axis=1), maps


@pytest.fixture(scope="module")
def csv_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv")
    items = []
    for i in range(10):
        path = folder / ("quo\"te,%d.png" % i if i == 3 else f"{i}.png")  # a name that needs CSV quoting
        cv2.imwrite(str(path), np.full((8, 8, 3), 25 * i, np.uint8))
        items.append((path, path.stem))
    out = folder / "out"
    predict_folder(MeanScorer(), items, out, fingerprint="m", threshold=100.0, overlays=False)
    return items, out, (out / "scores.csv").read_bytes()


damage = st.lists(st.tuples(st.sampled_from(["insert", "delete", "duplicate", "flip"]), st.integers(0, 10**6),
                            st.binary(min_size=1, max_size=4).filter(bool) | st.sampled_from([b'"', b",", b"\n", b"\r"])),
                  min_size=1, max_size=4)


def damaged(original: bytes, edits) -> bytes:
    data = bytearray(original)
    for kind, pos, blob in edits:
        pos %= len(data) + 1
        if kind == "insert":
            data[pos:pos] = blob
        elif kind == "delete":
            del data[pos:pos + len(blob)]
        elif kind == "duplicate":
            lines = bytes(data).split(b"\n")
            line = lines[pos % len(lines)]
            data = bytearray(bytes(data) + b"\n" + line + b"\n")
        elif data:
            data[pos % len(data)] ^= blob[0] or 1
    return bytes(data)


def count_intact(original: bytes, damaged_bytes: bytes) -> set[str]:
    """Paths whose original line is still present, unchanged, as a whole line of the damaged file."""
    kept = set(damaged_bytes.split(b"\n"))
    intact = set()
    for line in original.split(b"\n")[1:]:
        if line and line in kept:
            (row,) = csv.reader([line.decode()])
            intact.add(row[0])
    return intact


def check_csv_resume(csv_case, edits) -> None:
    items, out, original = csv_case
    bad = damaged(original, edits)
    (out / "scores.csv").write_bytes(bad)
    scorer = MeanScorer()
    try:
        summary = predict_folder(scorer, items, out, fingerprint="m", threshold=100.0, overlays=False)
    except PredictRunError as exc:  # the header was damaged into the columns of another tool
        assert "columns of another version or tool" in str(exc)
        return
    with open(out / "scores.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p, _ in items)  # each image exactly once
    assert all(list(r) == CSV_FIELDS and r["row_check"] == row_check(r) for r in rows)
    intact = count_intact(original, bad)
    assert scorer.seen <= len(items) - len(intact)  # intact rows are never scored again
    assert summary.resumed + summary.scored + summary.unreadable == len(items)


@PROPERTY
@given(edits=damage)
def test_csv_resume_after_any_damage_has_each_image_once_and_rescored_only_if_damaged(csv_case, edits):
    check_csv_resume(csv_case, edits)


# ----------------------------------------------------------------------------- the 1,000-file fuzz (slow)


@pytest.mark.slow
def test_fuzz_1000_files_per_kind_end_only_in_documented_errors(package_template, export_template, csv_case):
    """1,000 generated model.json, exported model.json and damaged scores.csv files each
    (COCO: test_reliability_labels.py::test_fuzz_1000_coco_files...)."""
    counts = {"model": 0, "export": 0, "csv": 0}

    @FUZZ_1000
    @given(data=st.data())
    def model_json(data):
        counts["model"] += 1
        check_model_json(package_template[0], data.draw(mutations(package_template[1])))

    @FUZZ_1000
    @given(data=st.data())
    def export_json(data):
        counts["export"] += 1
        check_export_json(export_template[0], data.draw(mutations(export_template[1])))

    @FUZZ_1000
    @given(edits=damage)
    def csv_file(edits):
        counts["csv"] += 1
        check_csv_resume(csv_case, edits)

    model_json()
    export_json()
    csv_file()
    assert min(counts.values()) >= 1000, counts
