"""Screenshot of the training-set audit list on a 1366 x 768 screen.

Run under a virtual X server the size of a laptop screen, e.g.::

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/screenshots/audit_screenshot.py
    # then, while it waits: import -window root audit-list.png  (or let it save the window itself)

It renders 60 good washers plus one image of each defect type filed under train/good (the
planted-defect case of tests/test_audit.py, 128 px) into a throw-away folder, imports it into
a throw-away workspace, clicks "Audit training images" (PatchCore at 128 px, 5 folds), ticks
"Exclude all above the cut-off" and saves ``audit-list.png`` (the screen, audit window on top).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from shot_window import TITLE_BAR, open_main_window  # beside this script (run as a script)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="workbench-audit-shot-"))
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")
    from PySide6.QtWidgets import QApplication

    from tests.test_audit import planted_dataset

    data, _ = planted_dataset(scratch / "images")
    app, win, pump = open_main_window(scratch, sys.argv)
    area = app.primaryScreen().availableGeometry()

    win.open_workspace(scratch / "ws", create=True)
    win.dataset_panel.import_dataset(data)
    if not pump(300, lambda: win.session.dataset is not None and not win.jobs.active_count):
        print("the dataset did not import", file=sys.stderr)
        return 1
    dialog = win.dataset_panel.open_audit({"image_size": 128, "coreset_ratio": 0.1})
    dialog.setGeometry(area.x() + 180, area.y() + TITLE_BAR + 30, 1000, area.height() - TITLE_BAR - 60)
    if not pump(1800, lambda: dialog.list.result is not None and not win.jobs.active_count):
        print("the audit did not finish", file=sys.stderr)
        return 1
    dialog.list.exclude_flagged.click()
    pump(1.5)
    out = HERE / "audit-list.png"
    if os.environ.get("DISPLAY") and subprocess.run(["import", "-window", "root", str(out)]).returncode == 0:
        print(f"{out.name}: the whole {area.width()}x{area.height()} screen")
    else:
        dialog.grab().save(str(out))
        print(f"{out.name}: the audit window {dialog.width()}x{dialog.height()}")
    win.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
