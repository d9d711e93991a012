"""Crash safety: a process killed (SIGKILL) in the middle of saving never leaves broken state.

A forked child saves in a tight loop (workspace labels and settings, an atomic JSON file,
or a whole model package); the test kills it after a random delay, then checks that
everything opens and holds either the state before or after one of the saves, never a torn
mix. Repeated 50 times for the workspace / atomic-write case and 10 times for model
packages. The children are forked (not spawned) so that no round pays for importing torch.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from workbench.core.files import atomic_write_json
from workbench.core.methods import create_method
from workbench.core.methods.package import load_model, read_metadata, save_model
from workbench.core.workspace.store import Workspace

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or os.name != "posix",
                                reason="kills forked children with SIGKILL (POSIX only)")


def _run_and_kill(target, args: tuple, max_delay: float) -> None:
    """Start ``target`` in a forked child, wait until it is saving, SIGKILL it at a random moment."""
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=target, args=(*args, ready), daemon=True)
    child.start()
    try:
        assert ready.wait(30), "the child did not start saving"
        time.sleep(random.uniform(0.0, max_delay))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    assert child.exitcode == -signal.SIGKILL


# ----------------------------------------------------------------------------- workspace + atomic JSON


def _workspace_writer(ws_dir: Path, json_path: Path, start: int, ready) -> None:
    ws = Workspace.open(ws_dir)
    dataset_id = ws.datasets()[0].id
    gen = start
    ready.set()
    while True:
        gen += 1
        ws.set_label(dataset_id, "part.png", "NG" if gen % 2 else "OK", note=f"gen {gen}")
        ws.set_setting("gen", gen)  # always written after the label of the same generation
        atomic_write_json(json_path, {"gen": gen, "payload": list(range(3000))})


def test_killed_workspace_and_atomic_writes_leave_old_or_new_state(tmp_path: Path) -> None:
    random.seed(1)
    data = tmp_path / "data"
    data.mkdir()
    ws_dir, json_path = tmp_path / "ws", tmp_path / "state.json"
    with Workspace.create(ws_dir) as ws:
        ds_id = ws.add_dataset("d", data, "folder").id
        ws.set_label(ds_id, "part.png", "OK", note="gen 0")
        ws.set_setting("gen", 0)
    atomic_write_json(json_path, {"gen": 0, "payload": list(range(3000))})

    last_setting, last_json, advanced = 0, 0, 0
    for _ in range(50):
        _run_and_kill(_workspace_writer, (ws_dir, json_path, last_setting), max_delay=0.03)
        with Workspace.open(ws_dir) as ws:  # opens, and holds a consistent state
            setting = ws.get_setting("gen")
            label = ws.labels(ds_id)["part.png"]
            label_gen = int(label["note"].split()[1])
            assert setting >= last_setting  # nothing committed was lost
            assert label_gen in (setting, setting + 1)  # killed between the two transactions at most
            assert label["verdict"] == ("NG" if label_gen % 2 else "OK")
            ws.set_setting("gen", setting)  # and still takes writes
        content = json.loads(json_path.read_text())  # never a torn file
        assert content["payload"] == list(range(3000)) and content["gen"] >= last_json
        advanced += setting > last_setting
        last_setting, last_json = setting, content["gen"]
    assert advanced >= 10, "the children hardly ever got to write: the test proved little"
    strays = [p.name for p in tmp_path.iterdir() if p.name.startswith(".state.json.")]
    assert all(name.endswith(".tmp") for name in strays)  # killed atomic writes leave only temp files


# ----------------------------------------------------------------------------- model packages


def _package_writer(model, target: Path, start: int, ready) -> None:
    gen = start
    ready.set()
    while True:
        gen += 1
        model.metadata["gen"] = gen
        save_model(model, target, overwrite=True)


def _synthetic_padim():
    """A fitted-looking PaDiM with valid tensor shapes, without running the backbone."""
    model = create_method("padim", device="cpu", image_size=64)
    d, positions = int(model.params["n_features"]), (64 // int(model.params["grid_stride"])) ** 2
    g = torch.Generator().manual_seed(0)
    model.load_state_tensors({"channel_index": torch.randperm(176, generator=g)[:d].sort().values,
                              "mean": torch.randn(positions, d, generator=g),
                              "inv_cov": torch.eye(d).repeat(positions, 1, 1)})
    return model


def test_killed_model_saves_leave_a_loadable_package(tmp_path: Path) -> None:
    random.seed(2)
    model = _synthetic_padim()
    target = tmp_path / "models" / "m"
    model.metadata["gen"] = 0
    start = time.perf_counter()
    save_model(model, target)
    save_seconds = time.perf_counter() - start

    last, advanced = 0, 0
    for _ in range(10):
        _run_and_kill(_package_writer, (model, target, last), max_delay=3 * save_seconds)
        loaded = load_model(target, verify=False)  # checksum and tensors verified
        gen = loaded.metadata["gen"]
        assert gen >= last and read_metadata(target)["gen"] == gen
        advanced += gen > last
        last = gen
    assert advanced >= 3, "the children hardly ever finished a save: the test proved little"

    model.metadata["gen"] = last + 1
    save_model(model, target, overwrite=True)  # the next save tidies the leftovers of the killed ones
    assert [p.name for p in target.parent.iterdir()] == ["m"]
    assert load_model(target, device="cpu").metadata["gen"] == last + 1  # full load: scores an image
