"""Screenshots of the inspection policy in the Threshold step, in a 1366 x 768 laptop window.

Run under a virtual X server the size of a laptop screen, e.g.::

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/screenshots/policy_screenshots.py

It opens the sample workspace (shipped pre-trained models) in a throw-away user data folder,
then writes next to this script:

* ``threshold-band.png``: an OK / REVIEW / NG band (two lines on the histogram, the REVIEW
  column of the confusion matrix, the share of parts going to REVIEW);
* ``threshold-ignore-region.png``: an ignore region (a polygon plus a painted stroke) drawn in
  the inspected-area editor over a test image, the Threshold step behind it using it;
* ``review-folder-run.png``: "Run inference on folder" with that unsaved policy, opened in Review.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from shot_window import open_main_window, open_sample  # beside this script (run as a script)

HERE = Path(__file__).resolve().parent


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")  # the sample workspace goes here
    from PySide6.QtWidgets import QApplication

    from workbench.core.calibration.area import InspectedArea, rasterize_polygons
    from workbench.core.data import read_image
    from workbench.gui.widgets.area_editor import AreaEditorDialog

    app, win, pump = open_main_window(scratch, sys.argv)

    def shot(name: str, widget=None) -> None:
        pump(1.0)
        out = HERE / name
        app.primaryScreen().grabWindow(0).save(str(out)) if widget is None else widget.grab().save(str(out))
        print(f"{out.name}: window {win.width()}x{win.height()}")

    if not open_sample(win, pump):
        print("the sample workspace did not open with a model", file=sys.stderr)
        return 1
    panel = win.threshold_panel
    win.go_to_step(2)
    pump(300, lambda: panel.data is not None and not win.jobs.active_count)
    scores = np.sort(panel.data.scores)
    panel.set_threshold(float(scores[int(0.7 * len(scores))] + scores[int(0.7 * len(scores)) + 1]) / 2)
    panel.set_ok_threshold(float(scores[int(0.45 * len(scores))] + scores[int(0.45 * len(scores)) + 1]) / 2)
    shot("threshold-band.png")

    # an ignore region: a polygon over one corner and a painted stroke, as the editor records it
    image = read_image(panel.sample_image_path())
    h, w = image.shape[:2]
    polygon = [(0.0, 0.0), (w * 0.35, 0.0), (w * 0.2, h * 0.3), (0.0, h * 0.22)]
    painted = rasterize_polygons([polygon], (h, w))
    painted[int(h * 0.85):int(h * 0.9), int(w * 0.6):int(w * 0.95)] = True
    drawn = InspectedArea.from_mask(painted, [polygon])
    job = panel.set_area(None, drawn.mask(), drawn={"ignore": drawn})
    pump(300, lambda: job is not None and not job.running and panel.data is not None and not win.jobs.active_count)
    dialog = AreaEditorDialog(image, panel.drawn["ignore"], "ignore", win)
    dialog.tool_buttons["polygon"].click()
    dialog.show()
    dialog.move(win.x() + 300, win.y() + 90)
    pump(1.5)
    dialog.canvas.fit()
    shot("threshold-ignore-region.png")
    dialog.close()

    # folder inference with the unsaved policy on screen, opened in Review
    folder = scratch / "incoming"
    folder.mkdir()
    for record in panel.data.evaluation.records[::3]:
        shutil.copy(record.path, folder / f"{record.label}_{record.path.name}")
    win.training_panel.start_inference(folder)
    pump(300, lambda: win.review_panel.showing_folder_run and not win.jobs.active_count)
    shot("review-folder-run.png")
    win.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
