"""installer/build.sh inspector builds the torch-free bundle and its --selftest passes.

Why: a bundle that misses a data file, a Qt plugin or pulls torch back in only shows up when
it is built and started; this does both (about a minute on 2 cores) and holds the size
target of the issue (a one-folder bundle under 400 MB on Linux).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="build.sh is the Linux/macOS script; the size target is Linux's")
def test_inspector_bundle_builds_without_torch_and_passes_its_selftest(tmp_path: Path) -> None:
    pytest.importorskip("PyInstaller", reason="pip install -e '.[installer]' (the test extra has it)")
    env = dict(os.environ, PYTHON=sys.executable, WORKBENCH_BUILD_DIR=str(tmp_path))
    env.pop("PYTHONPATH", None)  # the bundle must carry the checkout's package itself
    proc = subprocess.run(["bash", str(REPO / "installer" / "build.sh"), "inspector"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "selftest passed" in proc.stdout
    bundle = tmp_path / "dist" / "workbench-inspector"
    internal = bundle / "_internal"
    assert not (internal / "torch").exists() and not (internal / "timm").exists()
    assert (internal / "workbench" / "resources" / "style.qss").is_file()
    assert (bundle / "workbench-inspector.desktop").read_text().count("Exec=") == 1
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file() and not f.is_symlink())
    assert size < 400 * 2**20, f"{size / 2**20:.0f} MiB"
