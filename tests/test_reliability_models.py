"""Reliability and security of model packages and saved state.

Covers issue "Reliability and security", models and resources: missing weights, tensors
that do not fit (another input size or channel count), pickled ``.pth`` files (never
unpickled), damaged ``model.json``, disk full while saving (previous files intact), CUDA
out-of-memory fallback, stray temporary folders. The newer-format and altered-weights cases
are in test_methods.py::test_damaged_packages_are_refused (listed in docs/reliability.md).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench.cli import EXIT_BAD_INPUT, main
from workbench.core import files
from workbench.core.backbones import BackboneError
from workbench.core.backbones.weights import read_state_dict
from workbench.core.calibration.calibrate import save_calibration
from workbench.core.files import atomic_write_json, file_sha256
from workbench.core.methods import create_method
from workbench.core.methods import package as package_mod
from workbench.core.methods.package import ModelPackageError, load_model, read_metadata, save_model
from workbench.core.workspace import store
from workbench.core.workspace.store import DB_FILE, Workspace, WorkspaceError

DEAD_PID = 4_194_999  # above Linux's largest pid_max: never a running process


def images(n: int = 4, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(60, 200, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def padim():
    """One tiny fitted PaDiM for the module; the frozen backbone is built once."""
    from workbench.core.methods import base

    cache: dict = {}
    real = base.create_extractor

    def cached(spec, layers, device):
        key = (spec, tuple(layers), str(device))
        if key not in cache:
            cache[key] = real(spec, layers, device)
        return cache[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base, "create_extractor", cached)
        yield create_method("padim", device="cpu", image_size=64, batch_size=8).fit(images())


@pytest.fixture
def package(padim, tmp_path: Path) -> Path:
    return save_model(padim, tmp_path / "m")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def rewrite_weights(pkg: Path, tensors: dict[str, torch.Tensor], **meta_changes) -> None:
    """Replace the weights *and* fix the checksum, as a careful tamperer (or another tool) would."""
    save_file(tensors, str(pkg / "weights.safetensors"))
    meta = json.loads((pkg / "model.json").read_text())
    meta["weights_sha256"] = file_sha256(pkg / "weights.safetensors")
    for key, value in meta_changes.items():
        meta[key] = value
    (pkg / "model.json").write_text(json.dumps(meta))


# ----------------------------------------------------------------------------- damaged packages


def test_missing_weights_file(package: Path) -> None:
    (package / "weights.safetensors").unlink()
    with pytest.raises(ModelPackageError, match="weights.safetensors is missing: the model package is incomplete"):
        load_model(package)


def _smaller_input(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = t["mean"].shape[0] // 4  # positions of a model trained at half the input size
    return {**t, "mean": t["mean"][:p].contiguous(), "inv_cov": t["inv_cov"][:p].contiguous()}


def _more_channels(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    d = t["mean"].shape[1]  # statistics over d channels, but d + 1 feature channels selected
    return {**t, "channel_index": torch.arange(d + 1)}


def _channel_out_of_range(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**t, "channel_index": t["channel_index"] + 10_000}


def _missing_tensor(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in t.items() if k != "inv_cov"}


@pytest.mark.parametrize("tamper", [_smaller_input, _more_channels, _channel_out_of_range, _missing_tensor])
def test_tensors_that_do_not_fit_are_refused_clearly(tamper, package: Path) -> None:
    rewrite_weights(package, tamper(load_file(str(package / "weights.safetensors"))))
    with pytest.raises(ModelPackageError) as err:
        load_model(package)
    msg = str(err.value)
    assert str(package) in msg and "padim" in msg and "Retrain" in msg


def test_input_size_or_channels_edited_in_model_json(package: Path) -> None:
    meta = json.loads((package / "model.json").read_text())
    tensors = load_file(str(package / "weights.safetensors"))
    rewrite_weights(package, tensors, params={**meta["params"], "image_size": 96},
                    input={**meta["input"], "size": [96, 96]})
    with pytest.raises(ModelPackageError, match="weights do not fit.*another input size"):
        load_model(package)
    rewrite_weights(package, tensors, params=meta["params"], input={**meta["input"], "size": [128, 128]})
    with pytest.raises(ModelPackageError, match=r"input size is \[128, 128\] but the parameters say image_size=64"):
        load_model(package)
    rewrite_weights(package, tensors, input={**meta["input"], "channels": 1})
    with pytest.raises(ModelPackageError, match="expects 1-channel input images"):
        load_model(package)


class _WritesMarker:
    """Unpickling this object creates a marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_pth_is_never_unpickled(package: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": _WritesMarker(marker)}, evil)
    assert not marker.exists()

    with pytest.raises(BackboneError, match="Only plain tensor state dicts"):  # as backbone weights
        read_state_dict(evil)
    with pytest.raises(BackboneError):
        create_method("padim", device="cpu", image_size=64, weights=str(evil)).fit(images(2))

    shutil.copy(evil, package / "weights.pth")  # as a model's weights file, checksum matching
    meta = json.loads((package / "model.json").read_text())
    meta.update(weights_file="weights.pth", weights_sha256=file_sha256(evil))
    (package / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelPackageError, match="cannot be read as safetensors"):
        load_model(package)
    shutil.copy(evil, package / "weights.safetensors")  # or under the usual name
    meta["weights_file"] = "weights.safetensors"
    (package / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelPackageError, match="cannot be read as safetensors"):
        load_model(package)
    assert not marker.exists(), "a pickled object was executed"

    # The payload is real: unpickling it the unsafe way would have run it.
    pickle.loads(pickle.dumps(_WritesMarker(marker)))
    assert marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is damaged"),
    (b"\xff\xfe\x00garbage", "is damaged"),
    (b"[" * 100_000, "is damaged"),  # nesting deeper than the JSON parser's recursion limit
    (b"[1, 2, 3]", "lacks 'format_version' or 'method'"),
    (b'"just a string"', "lacks 'format_version' or 'method'"),
    (b'{"format_version": "1", "method": "padim"}', "must be a positive whole number"),
    (b'{"format_version": true, "method": "padim"}', "must be a positive whole number"),
    (b'{"format_version": 1.5, "method": "padim"}', "must be a positive whole number"),
])
def test_model_json_that_is_not_a_model_description(content: bytes, message: str, package: Path) -> None:
    (package / "model.json").write_bytes(content)
    with pytest.raises(ModelPackageError, match=message):
        load_model(package)


@pytest.mark.parametrize("change, message", [
    ({"method": 5}, "'method' must be a method name"),
    ({"method": "nosuch"}, "Unknown method 'nosuch'"),
    ({"params": [1, 2]}, "'params' must be an object"),
    ({"params": {"image_size": 5}}, "image_size"),
    ({"params": {"no_such_param": 1}}, "Unknown parameter"),
    ({"backbone": "efficientnet"}, "'backbone' must hold"),
    ({"backbone": {"name": "no_such_net", "weights": "embedded"}}, "backbone cannot be built"),
    ({"weights_file": "../m2/weights.safetensors"}, "must be a file name inside the model folder"),
    ({"weights_file": "/etc/passwd"}, "must be a file name inside the model folder"),
    ({"weights_sha256": 12}, "'weights_sha256' must be a hex string"),
    ({"input": [64, 64]}, "'input' must be an object"),
])
def test_model_json_with_wrong_values(change: dict, message: str, package: Path) -> None:
    meta = json.loads((package / "model.json").read_text())
    meta.update(change)
    (package / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelPackageError, match=message):
        load_model(package)


def test_cli_refuses_bad_packages_with_exit_2(package: Path, tmp_path: Path, capsys) -> None:
    image = tmp_path / "part.png"
    cv2.imwrite(str(image), images(1)[0])
    rewrite_weights(package, _smaller_input(load_file(str(package / "weights.safetensors"))))
    for command in (["predict", "--model", str(package), str(image), "--out", str(tmp_path / "o")],
                    ["export", "--model", str(package), "--out", str(tmp_path / "x")]):
        assert main(command) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "weights do not fit" in err and "Traceback" not in err
    (package / "model.json").write_text("[]")
    assert main(["predict", "--model", str(package), str(image), "--out", str(tmp_path / "o")]) == EXIT_BAD_INPUT
    assert "lacks 'format_version' or 'method'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- disk full


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_saving_model_keeps_previous_package(padim, package: Path, monkeypatch) -> None:
    before = snapshot(package)

    def half_written(tensors, path, *args, **kwargs):
        Path(path).write_bytes(b"\0" * 1000)  # some bytes made it to disk, then the disk was full
        _enospc()

    padim.metadata["note"] = "newer"
    monkeypatch.setattr(package_mod, "save_file", half_written)
    with pytest.raises(OSError, match="No space left"):
        save_model(padim, package, overwrite=True)
    monkeypatch.undo()
    monkeypatch.setattr(files.os, "fsync", _enospc)  # full while writing model.json instead
    with pytest.raises(OSError, match="No space left"):
        save_model(padim, package, overwrite=True)
    with pytest.raises(OSError, match="No space left"):  # or while a calibration rewrites model.json
        atomic_write_json(package / "model.json", {"broken": True})
    monkeypatch.undo()
    del padim.metadata["note"]

    assert snapshot(package) == before
    assert [p.name for p in package.parent.iterdir()] == ["m"]  # no staging folder or temp file left
    assert "note" not in load_model(package).metadata


def test_cli_reports_disk_full_with_exit_2(padim, package: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from workbench.core import training

    data = tmp_path / "data"
    (data / "good").mkdir(parents=True)
    for i, img in enumerate(images(3)):
        cv2.imwrite(str(data / "good" / f"{i}.png"), img)
    before = snapshot(package)
    monkeypatch.setattr(training, "train_model",
                        lambda *a, **k: training.TrainResult(padim, 0.1, 3, 0))
    monkeypatch.setattr(package_mod, "save_file", _enospc)
    assert main(["train", "--data", str(data), "--method", "padim", "--out", str(package), "--overwrite", "-q"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "error: No space left on device" in err and "previous version" in err
    assert snapshot(package) == before


def test_workspace_full_disk_keeps_labels_and_settings(tmp_path: Path) -> None:
    """SQLite's max_page_count makes the database "full" exactly as a full disk does (SQLITE_FULL)."""
    data = tmp_path / "data"
    data.mkdir()
    with Workspace.create(tmp_path / "ws") as ws:
        ds = ws.add_dataset("d", data, "folder")
        ws.set_label(ds.id, data / "a.png", "NG", "scratch", note="before")
        ws.set_setting("threshold", 0.5)
        conn = ws._live()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(WorkspaceError, match="database or disk is full.*Nothing was changed"):
            ws.set_label(ds.id, data / "a.png", "OK", note="x" * 200_000)
        with pytest.raises(WorkspaceError, match="disk is full"):
            ws.set_setting("threshold", ["y" * 200_000])
        assert ws.labels(ds.id)["a.png"]["verdict"] == "NG"
        assert ws.get_setting("threshold") == 0.5
    with Workspace.open(tmp_path / "ws") as ws:  # after "freeing space" (a new connection)
        assert ws.labels(ds.id)["a.png"]["note"] == "before" and ws.get_setting("threshold") == 0.5
        ws.set_setting("threshold", 0.7)
        assert ws.get_setting("threshold") == 0.7


# ----------------------------------------------------------------------------- stray temporary files


def test_stray_temp_files_do_not_confuse_loading(padim, package: Path) -> None:
    live = package.parent / f".m.tmp-{os.getpid()}-abc123"  # a save in progress (this process)
    dead = package.parent / f".m.tmp-{DEAD_PID}-xyz789"  # a save killed half-way
    dead_old = package.parent / f".m.old-{DEAD_PID}"  # a replace killed after the new one was in place
    other = package.parent / ".m.userstuff"  # not ours: never touched
    for folder in (live, dead, dead_old, other):
        folder.mkdir()
        (folder / "model.json").write_text("{half")
    (package / ".model.json.k2j3.tmp").write_text("{half")  # an atomic write killed half-way
    assert load_model(package).name == "padim"

    save_model(padim, package, overwrite=True)
    left = sorted(p.name for p in package.parent.iterdir())
    assert left == sorted([".m.userstuff", live.name, "m"])  # dead leftovers cleaned on the next save
    assert load_model(package).name == "padim"


def test_replace_killed_between_renames_restores_previous_package(package: Path) -> None:
    before = snapshot(package)
    os.replace(package, package.parent / f".m.old-{DEAD_PID}")  # killed right after the first rename
    staging = package.parent / f".m.tmp-{DEAD_PID}-aaaaaa"
    staging.mkdir()  # the new package that never made it
    assert load_model(package).name == "padim"
    assert snapshot(package) == before and read_metadata(package)["method"] == "padim"


def test_workspace_open_ignores_stray_files(tmp_path: Path) -> None:
    with Workspace.create(tmp_path / "ws") as ws:
        ws.set_setting("k", 1)
    (tmp_path / "ws" / f".{DB_FILE}.{DEAD_PID}.tmp").write_bytes(b"half a database")
    (tmp_path / "ws" / f"{DB_FILE}-journal").write_bytes(b"")
    (tmp_path / "ws" / "models" / ".m.tmp-1-abc").mkdir()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.get_setting("k") == 1
    assert store.DB_FILE == DB_FILE


# ----------------------------------------------------------------------------- CUDA out of memory


def _fake_predict(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stands in for a method's forward pass: per-image outputs that depend on the image only."""
    return x.flatten(1).mean(1), x[:, 0] * 2


def _oom_above(limit: int, seen: list[int]):
    def predict_tensor(x):
        seen.append(x.shape[0])
        if x.shape[0] > limit or x.device.type != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return _fake_predict(x)

    return predict_tensor


def test_out_of_memory_halves_the_batch(padim, monkeypatch) -> None:
    test = images(8, seed=3)
    monkeypatch.setattr(padim, "_predict_tensor", _fake_predict)
    expected_scores, expected_maps = padim.predict(test)
    seen: list[int] = []
    monkeypatch.setattr(padim, "_predict_tensor", _oom_above(2, seen))
    scores, maps = padim.predict(test)
    assert seen == [8, 4, 2, 2, 4, 2, 2]
    np.testing.assert_array_equal(scores, expected_scores)  # same images, same order
    np.testing.assert_array_equal(maps, expected_maps)

    seen.clear()
    monkeypatch.setattr(padim, "_predict_tensor", _oom_above(0, seen))
    with pytest.raises(torch.cuda.OutOfMemoryError):  # on the CPU already: nothing left to try
        padim.predict(test[:4])
    assert seen == [4, 2, 1]


def test_out_of_memory_for_one_image_falls_back_to_cpu(padim, monkeypatch, caplog) -> None:
    test = images(2, seed=4)
    expected_scores, _ = padim.predict(test)
    seen: list[int] = []
    real = type(padim)._predict_tensor

    def oom_off_cpu(x):
        seen.append(x.shape[0])
        if x.device.type != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(padim, x)

    monkeypatch.setattr(padim, "_predict_tensor", oom_off_cpu)
    monkeypatch.setattr(padim, "device", torch.device("meta"))  # stands in for a (full) GPU
    with caplog.at_level(logging.WARNING, logger="workbench.core.methods.base"):
        scores, _ = padim.predict(test)
    assert padim.device.type == "cpu"
    assert "out of GPU memory even for one image; continuing on the CPU" in caplog.text
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)  # the real model, now on the CPU
    assert seen == [2, 1, 1, 1]  # both on the "GPU", halved, the first single image again on the CPU


def test_save_calibration_is_atomic_too(package: Path, monkeypatch) -> None:
    before = snapshot(package)

    class Cal:  # the fields save_calibration reads
        name = "x"
        image_threshold, pixel_threshold, min_defect_area, normalization = 1.0, None, 0, "raw"

        def to_dict(self):
            return {"name": "x"}

    monkeypatch.setattr(files.os, "fsync", _enospc)
    with pytest.raises(OSError):
        save_calibration(package, Cal())
    assert snapshot(package) == before
