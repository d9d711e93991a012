"""Screenshot of the Review step's evidence box in a 1366 x 768 window (``review-evidence.png``).

Run under a virtual X server the size of a laptop screen::

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/screenshots/evidence_screenshot.py

It opens the sample workspace in a throw-away user data folder, trains a PatchCore on the
current sample category (128 px, a minute on a laptop CPU; the shipped sample models predate
the memory-bank sources that evidence needs), opens Review on a defective image and asks for
the nearest normal patch of its worst spot.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from shot_window import open_main_window, open_sample  # beside this script (run as a script)

HERE = Path(__file__).resolve().parent


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")
    from PySide6.QtWidgets import QApplication

    from workbench.core.run_record import sync_to_workspace
    from workbench.core.workflows import train_evaluate_save

    app, win, pump = open_main_window(scratch, sys.argv)

    if not open_sample(win, pump):
        print("the sample workspace did not open with a model", file=sys.stderr)
        return 1
    session, workspace = win.session, win.session.workspace
    out = workspace.new_model_dir("patchcore")
    outcome = train_evaluate_save(session.dataset, "patchcore", {"image_size": 128}, out, device="cpu")
    entry = workspace.add_model(session.dataset_entry.id, "patchcore", out, outcome.params, outcome.metrics,
                                outcome.fit_seconds)
    sync_to_workspace(workspace, entry.id, out)
    session.notify_models_changed()
    session.set_active_model(entry)
    win.go_to_step(3)
    panel = win.review_panel
    pump(300, lambda: panel.predictions is not None and panel.frame is not None and not win.jobs.active_count)
    defect = next(it for it in panel.model.items if it.record.split == "test" and it.record.is_anomalous)
    panel.select_key(defect.key)
    pump(60, lambda: panel.frame is not None and panel.frame.key == defect.key)
    worker = panel.evidence.explain_at(None, None)
    pump(120, lambda: worker.state not in ("pending", "running"))
    panel.tools_scroll.ensureWidgetVisible(panel.evidence_box)
    pump(1.5)
    target = HERE / "review-evidence.png"
    win.grab().save(str(target))
    print(f"{target.name}: window {win.width()}x{win.height()}; {panel.evidence_box.caption.text()}")
    win.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
