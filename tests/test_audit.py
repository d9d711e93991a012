"""Training-set audit: k-fold out-of-fold scores find defective images planted among good ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.core.audit import fold_of, robust_cutoff

N_GOOD, SIZE = 60, 128


def test_folds_are_balanced_and_seeded():
    folds = fold_of(63, 5, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [12, 12, 13, 13, 13]
    assert (fold_of(63, 5, seed=0) == folds).all() and not (fold_of(63, 5, seed=1) == folds).all()


def test_cutoff_is_not_dragged_up_by_the_outliers_it_should_catch():
    rng = np.random.default_rng(0)
    clean = rng.normal(10.0, 1.0, 60)
    cut_clean, median, _ = robust_cutoff(clean)
    assert 12.5 < cut_clean < 16 and abs(median - 10) < 0.5
    cut_dirty, _, _ = robust_cutoff(np.concatenate([clean, [40.0, 35.0, 30.0]]))
    assert abs(cut_dirty - cut_clean) < 0.5  # mean + 3 sigma would move by about 10
    assert (clean > cut_clean).sum() <= 1    # a clean set flags (almost) nothing
    assert robust_cutoff(np.full(10, 3.0))[0] == 3.0  # no spread: nothing is above the cut-off


def planted_dataset(root: Path) -> tuple[Path, list[str]]:
    """60 good washers plus one image of each defect type, all filed under train/good."""
    from workbench.core.data.synthetic import CATEGORIES, _write_png, render

    cat = root / "washer"
    for i in range(N_GOOD):
        _write_png(cat / "train" / "good" / f"{i:03d}.png", render("washer", "train", "good", i, 0, SIZE).image)
    planted = []
    for j, defect in enumerate(sorted(CATEGORIES["washer"]().defects)):
        name = f"{N_GOOD + j:03d}.png"  # names give nothing away
        _write_png(cat / "train" / "good" / name, render("washer", "test", defect, j, 0, SIZE).image)
        planted.append(name)
    _write_png(cat / "test" / "good" / "000.png", render("washer", "test", "good", 0, 0, SIZE).image)
    return cat, planted


@pytest.mark.slow
def test_planted_defects_rank_top5_and_training_skips_the_excluded(tmp_path, capsys):
    """Through the command line: audit -> exclude the suspicious in a workspace -> train skips them.
    (About 40 s on an idle 2-core machine: 5 PatchCore fits at 128 px.)"""
    from workbench.cli import main

    data, planted = planted_dataset(tmp_path / "data")
    out, ws = tmp_path / "audit", tmp_path / "ws"
    assert main(["audit", "--data", str(data), "--method", "patchcore", "--param", "image_size=128",
                 "--param", "coreset_ratio=0.1", "--out", str(out), "--folds", "5", "--overlays", "8",
                 "--workspace", str(ws), "--exclude-suspicious", "--device", "cpu", "-q"]) == 0
    report = json.loads((out / "audit.json").read_text())
    ranked = [Path(e["path"]).name for e in report["images"]]
    assert len(ranked) == N_GOOD + 3 and report["folds"] == 5
    assert set(planted) <= set(ranked[:5]), ranked[:8]
    flagged = {Path(e["path"]).name for e in report["images"] if e["suspicious"]}
    assert set(planted) <= flagged and len(flagged) <= 6  # the cut-off catches them, not half the set
    csv_lines = (out / "audit.csv").read_text().splitlines()
    assert csv_lines[0].startswith("rank,path,score") and len(csv_lines) == N_GOOD + 4
    assert len(list((out / "overlays").glob("*.png"))) == 8
    text = capsys.readouterr().out
    assert "Suggested cut-off" in text and f"Excluded {len(flagged)} image(s)" in text
    assert all((data / "train" / "good" / name).is_file() for name in planted)  # never deleted

    model = tmp_path / "model"
    assert main(["train", "--data", str(data), "--method", "padim", "--param", "image_size=64",
                 "--workspace", str(ws), "--out", str(model), "--device", "cpu", "-q"]) == 0
    assert f"skipped {len(flagged)} image(s) excluded in workspace" in capsys.readouterr().out
    meta = json.loads((model / "model.json").read_text())
    assert meta["training"]["n_excluded"] == len(flagged)
    assert meta["training"]["n_train"] + meta["training"]["n_holdout"] == N_GOOD + 3 - len(flagged)


def test_audit_refuses_bad_output_and_too_few_images(tmp_path, sample_root):
    from workbench.cli import main

    victim = tmp_path / "notes"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    assert main(["audit", "--data", str(sample_root), "--category", "washer", "--out", str(victim), "-q"]) == 2
    assert (victim / "keep.txt").read_text() == "mine"
    assert main(["audit", "--data", str(sample_root), "--category", "washer", "--out",
                 str(sample_root / "washer" / "audit"), "-q"]) == 2
    assert main(["audit", "--data", str(sample_root), "--category", "washer", "--out", str(tmp_path / "a"),
                 "--exclude-suspicious", "-q"]) == 2
    assert main(["audit", "--data", str(sample_root), "--category", "washer", "--out", str(tmp_path / "b"),
                 "--folds", "50", "-q"]) == 2  # more folds than images
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
