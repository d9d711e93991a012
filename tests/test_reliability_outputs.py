"""Output folders are never destroyed (issue "Reliability round 2", data loss).

A command writes into a new or empty folder, or replaces a folder only when it holds nothing
but that command's own earlier output *and* the user asked for it (``--overwrite``); never a
folder holding anything else, never its own input (nor a folder inside or around it).
Staging folders are removed on every exit path and by the next run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from workbench.cli import EXIT_BAD_INPUT, main
from workbench.core.export import export_onnx
from workbench.core.files import OutputFolderError, atomic_replace_dir, staging_dir
from workbench.core.formats import EXPORTED_PACKAGE, MODEL_PACKAGE
from workbench.core.methods import create_method
from workbench.core.methods.package import load_model, save_model

DEAD_PID = 4_194_999  # above Linux's largest pid_max: never a running process


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def padim():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(60, 200, (48, 48, 3), dtype=np.uint8) for _ in range(4)]
    return create_method("padim", device="cpu", image_size=64, batch_size=8).fit(imgs)


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    """A folder of the user's own files."""
    docs = tmp_path / "documents"
    (docs / "sub").mkdir(parents=True)
    (docs / "thesis.docx").write_bytes(b"years of work")
    (docs / "sub" / "photo.jpg").write_bytes(b"\xff\xd8 holiday")
    return docs


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "good").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(root / "good" / f"{i}.png"), rng.integers(60, 200, (48, 48, 3), dtype=np.uint8))
    return root


@pytest.fixture
def fake_training(padim, monkeypatch):
    """`workbench train` without the training: the folder checks are what is tested."""
    from workbench.core import training

    monkeypatch.setattr(training, "train_model", lambda *a, **k: training.TrainResult(padim, 0.1, 3, 0))


# ----------------------------------------------------------------------------- train --out


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_train_never_replaces_a_folder_of_user_documents(documents, dataset, fake_training, capsys, overwrite):
    before = snapshot(documents)
    argv = ["train", "--data", str(dataset), "--method", "padim", "--out", str(documents), "-q", *overwrite]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "already holds other files" in err and "thesis.docx" in err and "Traceback" not in err
    assert snapshot(documents) == before


@pytest.mark.parametrize("where", ["dataset", "inside", "around", "symlink"])
def test_train_never_writes_over_or_into_its_dataset(where, dataset, fake_training, tmp_path, capsys):
    before = snapshot(dataset)
    out = {"dataset": dataset, "inside": dataset / "good" / "model", "around": tmp_path,
           "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        os.symlink(dataset, out)
    argv = ["train", "--data", str(dataset), "--method", "padim", "--out", str(out), "--overwrite", "-q"]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "the dataset" in err and "Choose a new folder outside it" in err
    assert snapshot(dataset) == before and not (dataset / "good" / "model").exists()


def test_train_replaces_its_own_model_only_with_overwrite(dataset, fake_training, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--data", str(dataset), "--method", "padim", "--out", str(out), "-q"]) == 0
    first = snapshot(out)
    assert main(["train", "--data", str(dataset), "--method", "padim", "--out", str(out), "-q"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "already holds a model package" in err and "--overwrite" in err
    assert snapshot(out) == first
    assert main(["train", "--data", str(dataset), "--method", "padim", "--out", str(out), "--overwrite", "-q"]) == 0
    assert load_model(out).name == "padim"
    assert sorted(p.name for p in out.parent.iterdir()) == ["data", "model"]  # no staging or backup left


def test_an_empty_folder_is_fine(padim, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_model(save_model(padim, empty)).name == "padim"


# ----------------------------------------------------------------------------- core level


def test_core_save_and_replace_refuse_foreign_folders_even_with_overwrite(padim, documents):
    before = snapshot(documents)
    with pytest.raises(OutputFolderError, match="already holds other files"):
        save_model(padim, documents, overwrite=True)
    staging = staging_dir(documents)
    (staging / "model.json").write_text("{}")
    with pytest.raises(OutputFolderError):
        atomic_replace_dir(staging, documents, MODEL_PACKAGE, overwrite=True)
    assert snapshot(documents) == before


def test_a_folder_with_only_a_damaged_model_json_is_not_replaced(padim, tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "model.json").write_text('{"my": "notes"}')
    with pytest.raises(OutputFolderError, match="not a valid model package"):
        save_model(padim, fake, overwrite=True)
    assert (fake / "model.json").read_text() == '{"my": "notes"}'


def test_a_model_package_is_not_replaced_by_an_export_and_vice_versa(padim, tmp_path):
    package = save_model(padim, tmp_path / "m")
    staging = staging_dir(package)
    with pytest.raises(OutputFolderError, match="not a valid exported model|already holds other files"):
        atomic_replace_dir(staging, package, EXPORTED_PACKAGE, overwrite=True)
    assert load_model(package).name == "padim"


# ----------------------------------------------------------------------------- export --out


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
@pytest.mark.parametrize("inside", [False, True])
def test_export_never_writes_over_or_into_the_model(padim, tmp_path, capsys, overwrite, inside):
    package = save_model(padim, tmp_path / "m")
    before = snapshot(package)
    out = package / "onnx" if inside else package
    assert main(["export", "--model", str(package), "--out", str(out), *overwrite]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "the model folder" in err and "Traceback" not in err
    assert snapshot(package) == before and load_model(package).name == "padim"


def _fake_onnx_export(module, args, path, **kwargs):
    Path(path).write_bytes(b"not really onnx")


def test_export_staging_is_removed_when_interrupted_and_by_the_next_run(padim, tmp_path, monkeypatch):
    out = tmp_path / "export"

    def interrupted(module, args, path, **kwargs):
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(padim, out)
    assert list(tmp_path.iterdir()) == []  # the staging folder did not survive the interruption
    stale = tmp_path / f".export.tmp-{DEAD_PID}-abc123"  # a killed export of an earlier version
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"x" * 1000)
    monkeypatch.setattr(torch.onnx, "export", _fake_onnx_export)
    export_onnx(padim, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]
    with pytest.raises(OutputFolderError, match="already holds an exported model"):
        export_onnx(padim, out)
    export_onnx(padim, out, overwrite=True)
    assert json.loads((out / "model.json").read_text())["onnx"]["file"] == "model.onnx"


# ----------------------------------------------------------------------------- predict --out


def test_predict_refuses_a_folder_of_user_documents_and_its_image_folder(padim, documents, dataset, tmp_path, capsys):
    package = save_model(padim, tmp_path / "m")
    before = snapshot(documents)
    assert main(["predict", "--model", str(package), str(dataset / "good"), "--out", str(documents), "-q"]) \
        == EXIT_BAD_INPUT
    assert "already holds other files" in capsys.readouterr().err
    assert snapshot(documents) == before
    images_before = snapshot(dataset)
    assert main(["predict", "--model", str(package), str(dataset / "good"), "--out", str(dataset / "good" / "o"),
                 "-q"]) == EXIT_BAD_INPUT
    assert "the image folder" in capsys.readouterr().err
    assert main(["predict", "--model", str(package), str(dataset / "good"), "--out", str(package), "-q"]) \
        == EXIT_BAD_INPUT
    assert "the model folder" in capsys.readouterr().err
    assert snapshot(dataset) == images_before and load_model(package).name == "padim"


def test_gui_training_saves_into_a_fresh_workspace_folder_and_never_deletes_a_foreign_one(padim, tmp_path, monkeypatch):
    from workbench.core import training
    from workbench.core.jobs import CancelToken
    from workbench.gui import pipelines

    # the GUI's training job is the core workflow, which looks train_model up at call time
    monkeypatch.setattr(training, "train_model", lambda *a, **k: training.TrainResult(padim, 0.1, 3, 0))

    class NoTest:
        test: list = []

    fresh = tmp_path / "models" / "20260101-padim-abcd"
    outcome = pipelines.train_evaluate_save(NoTest(), "padim", {}, fresh, cancel=CancelToken())
    assert load_model(outcome.model_dir).name == "padim"
    foreign = tmp_path / "models" / "taken"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError):
        pipelines.train_evaluate_save(NoTest(), "padim", {}, foreign, cancel=CancelToken())
    assert (foreign / "notes.txt").read_text() == "mine"
