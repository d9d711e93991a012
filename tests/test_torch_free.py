"""The deployment path runs with torch and timm blocked from import.

Why: the Inspector bundle ships without torch (it would be most of its size), and a line-side
PC scoring an exported ONNX package should not need a 1 GB framework. A subprocess installs a
meta-path finder that raises ImportError for torch, torchvision and timm, then runs
``workbench predict --model EXPORTED`` (load the package, read images, onnxruntime, decisions,
CSV and overlays) and imports the Review viewer widgets. Any module-level torch import that
creeps into that path fails this test.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    class _BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'torchvision', 'timm'):
                raise ImportError(f'{name} is blocked: the deployment path must not import it')
            return None

    sys.meta_path.insert(0, _BlockTorch())
""")

# modules of the deployment path that must import without torch (policy.py once it exists)
TORCH_FREE_MODULES = [
    "workbench.core.export.runtime", "workbench.core.data", "workbench.core.batch_predict",
    "workbench.core.visualize", "workbench.core.calibration.thresholds",
    "workbench.gui.widgets.review_viewer", "workbench.gui.widgets.review_frames",
    "workbench.package_data", "workbench.core.sample_models", "workbench.gui.inspector",
    "workbench.core.report", "workbench.core.report.context", "workbench.core.report.render",
    "workbench.cli_commands.report", "workbench.gui.report_pdf",
    "workbench.core.live", "workbench.cli_commands.inspect", "workbench.gui.panels.live_panel",
    "workbench.gui.live_window",
]


def run_blocked(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (this checkout first on the path) with torch blocked."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_images) -> tuple[Path, object]:
    """A tiny PaDiM fitted on CPU and exported to ONNX; returns (export folder, torch model)."""
    from workbench.core.export import export_onnx
    from workbench.core.methods import create_method

    model = create_method("padim", image_size=64, device="cpu")
    model.fit(tiny_images["train"])
    out = tmp_path_factory.mktemp("torchfree") / "export"
    export_onnx(model, out)
    return out, model


def test_blocker_really_blocks(tmp_path: Path) -> None:
    proc = run_blocked("import torch", tmp_path)
    assert proc.returncode != 0 and "is blocked" in proc.stderr


def test_deployment_modules_import_without_torch(tmp_path: Path) -> None:
    import importlib.util

    modules = TORCH_FREE_MODULES + [m for m in ("workbench.core.calibration.policy",)
                                    if importlib.util.find_spec(m) is not None]
    proc = run_blocked(f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')]
        print('imported', len({modules!r}))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_predict_with_exported_package_runs_without_torch(exported, tiny_dataset, tmp_path: Path) -> None:
    export_dir, model = exported
    images = tmp_path / "images"
    images.mkdir()
    records = [r for r in tiny_dataset.test if r.is_good][:2] + [r for r in tiny_dataset.test if r.is_anomalous][:2]
    for i, record in enumerate(records):
        (images / f"{i}.png").write_bytes(Path(record.path).read_bytes())
    from workbench.core.data import read_image

    torch_scores, _ = model.predict([read_image(images / f"{i}.png") for i in range(4)])
    threshold = float(np.median(torch_scores))  # two OK and two NG decisions
    out = tmp_path / "out"
    proc = run_blocked(f"""
        import sys
        from workbench.cli import main
        rc = main(['predict', '--model', {str(export_dir)!r}, {str(images)!r}, '--out', {str(out)!r},
                   '--threshold', {repr(str(threshold))}, '-q'])
        leaked = [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')]
        print('rc', rc, 'leaked', leaked)
        sys.exit(rc or (3 if leaked else 0))
    """, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    with open(out / "scores.csv", newline="", encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert sorted(rows) == [f"{i}.png" for i in range(4)]
    # the scores of the torch-free run are the torch model's (same preprocessing, same graph)
    onnx_scores = np.array([float(rows[f"{i}.png"]["score"]) for i in range(4)])
    np.testing.assert_allclose(onnx_scores, torch_scores, rtol=1e-3, atol=1e-4)
    assert [rows[f"{i}.png"]["decision"] for i in range(4)] == [
        "NG" if s >= threshold else "OK" for s in onnx_scores]
    assert len(list(out.glob("*_overlay.png"))) == 4
    assert json.loads((out / "predict_run.json").read_text())["threshold"] == pytest.approx(threshold)


def test_shipped_sample_models_check_without_torch(tmp_path: Path) -> None:
    """The bundles' self-test core: shipped ONNX graphs re-score the sample images, no torch."""
    proc = run_blocked("""
        from workbench.core.sample_models import check_sample_models
        results = check_sample_models()
        assert results and all(r.ok for r in results), results
        print('checked', [r.category for r in results])
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checked" in proc.stdout


def test_report_of_exported_package_runs_without_torch(exported, tiny_dataset, tmp_path: Path) -> None:
    """The Inspector's report path: score a labelled folder with the exported package, write the
    HTML and the PDF (matplotlib figures, jinja2, Qt's PDF writer), all with torch blocked."""
    export_dir, _ = exported
    images = tmp_path / "images"
    for record in tiny_dataset.test[:3] + [r for r in tiny_dataset.test if r.is_anomalous][:3]:
        target = images / record.label / Path(record.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(record.path).read_bytes())
    out, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    proc = run_blocked(f"""
        import sys
        from workbench.cli import main
        rc = main(['report', '--model', {str(export_dir)!r}, '--data', {str(images)!r}, '--out', {str(out)!r},
                   '--pdf', {str(pdf)!r}, '-q'])
        leaked = [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')]
        print('rc', rc, 'leaked', leaked)
        sys.exit(rc or (3 if leaked else 0))
    """, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    html = out.read_text(encoding="utf-8")
    assert 'data-key="image_auroc"' in html and "data:image/png;base64," in html
    assert pdf.read_bytes().startswith(b"%PDF")


def test_live_inspection_with_exported_package_runs_without_torch(tmp_path: Path) -> None:
    """``workbench inspect`` on an exported package: the line-side loop needs no torch."""
    model = REPO / "workbench" / "sample_models" / "washer" / "onnx"
    images = REPO / "workbench" / "sample_data" / "washer" / "test"
    log = tmp_path / "live.csv"
    proc = run_blocked(f"""
        import sys
        from workbench.cli import main
        rc = main(['inspect', '--model', {str(model)!r}, '--replay', {str(images)!r}, '--log', {str(log)!r},
                   '--max-images', '4', '-q'])
        leaked = [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')]
        print('rc', rc, 'leaked', leaked)
        sys.exit(rc or (3 if leaked else 0))
    """, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    from workbench.core.live import read_log

    assert len(read_log(log)) == 4
