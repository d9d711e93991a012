"""The station window: the Live step's view on its own, for a line PC or a demo.

``workbench demo --live`` opens it on the shipped sample model of a sample category and
replays that category's test images in a loop, so verdicts appear within seconds of start
without a camera, training or a workspace. Torch-free (the sample model is an ONNX export),
so the Inspector bundle could host it too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtWidgets import QMainWindow, QWidget

from workbench.gui.app import app_icon
from workbench.gui.panels.live_panel import REPLAY, LivePanel

TITLE = "Live inspection"


class StationWindow(QMainWindow):
    def __init__(self, log_root: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.setWindowIcon(app_icon())
        self.resize(1280, 760)
        self._tmp = None
        if log_root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="workbench-live-")
            log_root = self._tmp.name
        self.panel = LivePanel(log_root)
        self.setCentralWidget(self.panel)

    def open_demo(self, category: str = "washer", fps: float = 2.0) -> bool:
        """The shipped sample model of ``category`` replaying the sample test images."""
        from workbench.core.sample_models import shipped_models
        from workbench.package_data import sample_data_dir

        models = shipped_models()
        if category not in models:
            raise ValueError(f"No shipped sample model for '{category}'; choose one of {', '.join(sorted(models))}.")
        model = models[category]
        self.panel.set_model(model.export_dir, f"sample model ({category})")
        self.panel.set_source(REPLAY, sample_data_dir() / category / "test", fps)
        self.setWindowTitle(f"{TITLE} – sample {category} (replay)")
        return self.panel.start()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.panel.shutdown()
        super().closeEvent(event)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def run_demo(category: str = "washer", fps: float = 2.0, log_root: str | Path | None = None) -> int:
    """Open the station window on the sample (the ``demo --live`` command); returns the exit code."""
    import logging

    from workbench.gui.app import create_application, install_excepthook

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = create_application(["workbench"])
    install_excepthook()
    window = StationWindow(log_root)
    window.show()
    window.open_demo(category, fps)
    return int(app.exec())
