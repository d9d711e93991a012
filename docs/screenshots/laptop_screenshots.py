"""Screenshots of every workflow step in a 1366 x 768 laptop window.

Run under a virtual X server the size of a laptop screen, e.g.::

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/screenshots/laptop_screenshots.py

It opens the sample workspace (with its shipped pre-trained models) in a throw-away user data
folder and settings file, sizes the window to the screen less a title bar, shows each step and
writes ``laptop-1366-<step>.png`` next to this script. On another screen size the files are
named after its width (``desktop-1920-<step>.png``); ``--steps threshold review`` limits the steps.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from shot_window import open_main_window, open_sample  # beside this script (run as a script)

HERE = Path(__file__).resolve().parent
STEPS = ("dataset", "training", "threshold", "review")


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")  # the sample workspace goes here
    os.environ["XDG_CONFIG_HOME"] = str(scratch / "config")  # default settings: the light theme
    from PySide6.QtWidgets import QApplication

    args = sys.argv[1:]
    wanted = set(args[args.index("--steps") + 1:]) if "--steps" in args else set(STEPS)
    app, win, pump = open_main_window(scratch, sys.argv[:1])
    area = app.primaryScreen().availableGeometry()
    prefix = "laptop-1366" if area.width() <= 1366 else f"desktop-{area.width()}"

    if not open_sample(win, pump):
        print("the sample workspace did not open with a model", file=sys.stderr)
        return 1
    last = max(STEPS.index(key) for key in wanted)
    for index, key in enumerate(STEPS[:last + 1]):
        win.go_to_step(index)
        if key == "threshold":
            pump(300, lambda: win.threshold_panel.data is not None and not win.jobs.active_count)
        if key == "review":
            panel = win.review_panel
            pump(300, lambda: panel.predictions is not None and panel.frame is not None)
        pump(1.5)
        if key not in wanted:
            continue
        out = HERE / f"{prefix}-{key}.png"
        win.grab().save(str(out))
        print(f"{out.name}: window {win.width()}x{win.height()}")
    win.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
