"""A normal (non-editable) wheel install finds its style sheet, icon and sample data.

Why: the app used to read them relative to the source checkout, so ``pip install .`` (or a
frozen bundle) silently lost them: no style, no sample workspace, ``workbench demo`` failing.
This builds the wheel from the checkout, installs it into a fresh venv and runs the demo and
the offscreen GUI start from there, far from the checkout.

The fresh venv reuses the heavy dependencies (torch, Qt, ...) of the interpreter running the
tests through a ``.pth`` line, so nothing is downloaded; ``PYTHONPATH`` is cleared so the
checkout cannot leak in, and the test asserts the imported package is the installed one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(venv python, environment, working folder) with the wheel of this checkout installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    # build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "workbench", src / "workbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["XDG_DATA_HOME"] = str(tmp / "data")  # the sample workspace goes here, not into $HOME
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp / "dist"), str(src)], tmp, env, 300)
    wheel = next((tmp / "dist").glob("workbench-*.whl"))

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env, 300)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp, env, 60).stdout.strip())
    # the heavy dependencies of the interpreter running the tests, appended after the venv's own
    # site-packages (a path line in a .pth adds the folder without running its .pth files, so
    # the editable install of the checkout stays out)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    _run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], tmp, env, 300)
    work = tmp / "elsewhere"
    work.mkdir()
    return py, env, work


def test_installed_package_is_the_wheel_and_has_its_data(installed) -> None:
    py, env, work = installed
    code = textwrap.dedent("""
        import workbench, workbench.package_data as pd
        print(workbench.__file__)
        assert pd.resource_path(pd.STYLE_SHEET).read_text().strip(), 'empty style sheet'
        assert pd.resource_path(pd.APP_ICON).stat().st_size > 1000, 'no icon'
        from workbench.core.data import list_categories
        print(','.join(list_categories(pd.sample_data_dir())))
        from workbench.core.sample_models import check_sample_models
        assert all(r.ok for r in check_sample_models()), 'shipped sample models missing or wrong'
    """)
    out = _run([str(py), "-c", code], work, env, 120).stdout.split()
    venv_root = py.parents[1].resolve()
    assert Path(out[0]).resolve().is_relative_to(venv_root), f"imported {out[0]}, not the installed wheel"
    assert out[1] == "fabric,washer"


def test_installed_demo_runs(installed) -> None:
    py, env, work = installed
    exe = py.parent / ("workbench.exe" if os.name == "nt" else "workbench")
    proc = _run([str(exe), "demo", "--methods", "padim", "--category", "washer", "--device", "cpu", "-q",
                 "--out", str(work / "demo")], work, env, 600)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("washer"))
    assert float(row.split()[2]) >= 0.9, proc.stdout  # image AUROC of PaDiM on the sample washer
    assert (work / "demo" / "washer-padim" / "model.json").is_file()


def test_installed_gui_starts_with_style_icon_and_sample(installed) -> None:
    py, env, work = installed
    code = textwrap.dedent("""
        from workbench.gui.app import create_application
        app = create_application(['workbench'])
        assert app.styleSheet().strip(), 'style sheet not loaded'
        assert not app.windowIcon().isNull(), 'no window icon'
        from workbench.gui.main_window import MainWindow
        from workbench.gui.sample import sample_data_root
        window = MainWindow(restore_last=False)
        window.show()
        app.processEvents()
        assert sample_data_root().is_dir(), sample_data_root()
        window.close()
        print('gui ok')
    """)
    assert "gui ok" in _run([str(py), "-c", code], work, env, 300).stdout


def test_installed_inspector_selftest_passes(installed) -> None:
    py, env, work = installed
    exe = py.parent / ("workbench-inspector.exe" if os.name == "nt" else "workbench-inspector")
    assert "selftest passed" in _run([str(exe), "--selftest"], work, env, 300).stdout


def test_installed_demo_live_shows_verdicts_within_a_minute(installed) -> None:
    """As a new user would: the installed ``workbench demo --live`` decides its first part (a row
    in the session log, shown on screen at the next 0.1 s refresh) within 60 s of launch."""
    import csv
    import time

    py, env, work = installed
    exe = py.parent / ("workbench.exe" if os.name == "nt" else "workbench")
    started = time.monotonic()
    proc = subprocess.Popen([str(exe), "demo", "--live", "--out", str(work / "live")], cwd=work,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows: list[dict[str, str]] = []
    try:
        while time.monotonic() - started < 60 and proc.poll() is None and not rows:
            for log in (work / "live").glob("*/live.csv"):
                with open(log, newline="", encoding="utf-8") as fh:  # a busy scorer may log 'dropped' first
                    rows = [r for r in csv.DictReader(fh) if r["decision"] in ("OK", "REVIEW", "NG")]
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert rows, f"no verdict within 60 s; stderr: {err[-2000:]}"
    assert elapsed < 60
