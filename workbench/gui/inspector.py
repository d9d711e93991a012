"""The Inspector: a small torch-free window for the line side and for demos.

It opens an exported model package (``workbench export``: ONNX graph + model.json with its
calibrated thresholds), scores a folder with onnxruntime (the streaming, resumable
:func:`~workbench.core.batch_predict.predict_folder`: CSV + heat-map overlays), lists every
image with its score and OK/NG decision, and shows the selected image in the Review viewer of
the full application (heat map normalised per model, thresholded defect outline). The CSV can
be saved anywhere, and so can the inspection report of the scored folder (File > Export
report: :mod:`workbench.core.report`, image-level metrics when the folder names give labels).
It never imports torch or timm, so its bundle stays small
(``installer/build.sh inspector``); tests/test_torch_free.py checks that.

``workbench-inspector [MODEL_DIR [FOLDER]]``, ``--sample CATEGORY`` opens a shipped sample
model on the sample test images, ``--selftest`` checks a bundle (see :func:`run_selftest`).
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QFileDialog, QHeaderView, QLabel, QMainWindow, QSplitter,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

import workbench
from workbench.core.batch_predict import PredictSummary, model_fingerprint, predict_folder
from workbench.core.data import IMAGE_SUFFIXES, ImageReadError, ImageRecord, read_image
from workbench.core.export.runtime import OnnxInferencer, is_exported_package
from workbench.core.visualize import MapScale
from workbench.gui.widgets import errors
from workbench.gui.widgets.mask_editor import MaskEditor
from workbench.gui.widgets.review_frames import MapSettings, render_frame
from workbench.gui.widgets.review_viewer import ReviewViewer
from workbench.gui.workers import JobRunner, Worker

APP_NAME = "Anomaly Inspector"
COLUMNS = ("image", "score", "decision")


def folder_items(folder: Path) -> list[tuple[Path, str]]:
    """Images under ``folder`` with a unique output stem each (sub/folder/a.png -> sub__folder__a)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return [(p, p.relative_to(folder).with_suffix("").as_posix().replace("/", "__")) for p in files]


class InspectorWindow(QMainWindow):
    """Model + scored folder -> a table of decisions and the Review viewer of the selected image."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_NAME)
        self.resize(1280, 760)
        self.jobs = JobRunner(self)
        self.model_dir: Path | None = None
        self.inferencer: OnnxInferencer | None = None
        self.threshold: float | None = None
        self.settings: MapSettings | None = None
        self.out_dir: Path | None = None
        self.folder: Path | None = None  # the scored folder: the table names images relative to it
        self.rows: list[dict[str, str]] = []
        self.worker: Worker | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="workbench-inspector-")

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.currentCellChanged.connect(lambda row, *_: self.show_row(row))
        self.summary = QLabel("Open an exported model (File > Open model) or the sample (File > Open sample).")
        self.summary.setWordWrap(True)
        self.editor = MaskEditor(self)
        self.viewer = ReviewViewer(self.editor)
        self.verdict = QLabel("")
        self.verdict.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.verdict.setStyleSheet("font-size: 14pt; font-weight: 600;")
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(self.summary)
        lv.addWidget(self.table, 1)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.addWidget(self.verdict)
        rv.addWidget(self.viewer, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([380, 900])
        self.setCentralWidget(split)
        self._build_menus()
        self.statusBar().showMessage("No model")

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        for text, slot, key in (("&Open model…", self.choose_model, QKeySequence.StandardKey.Open),
                                ("&Score folder…", self.choose_folder, "Ctrl+F"),
                                ("&Export CSV…", self.choose_csv, "Ctrl+E"),
                                ("Export &report…", self.choose_report, "Ctrl+R")):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(slot)
            menu.addAction(action)
        self.report_action = action
        missing = report_libraries_missing()
        if missing:  # a bundle built without them: say so instead of failing on click
            action.setEnabled(False)
            action.setToolTip(f"Reports need {', '.join(missing)}, which this installation lacks.")
        from workbench.core.sample_models import shipped_models

        sample_menu = menu.addMenu("Open &sample")
        for category in sorted(shipped_models()):
            action = QAction(category, self)
            action.triggered.connect(lambda _=False, c=category: self.open_sample(c))
            sample_menu.addAction(action)
        menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)

    # ------------------------------------------------------------------ model
    def choose_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Exported model folder (model.json + model.onnx)")
        if folder:
            self.open_model(Path(folder))

    def open_model(self, folder: Path) -> bool:
        folder = Path(folder)
        if not is_exported_package(folder):
            errors.show_error(self, "Not an exported model",
                              f"{folder} holds no exported model (model.json naming an ONNX graph). "
                              "Export a trained model with 'workbench export --model M --format onnx "
                              "--out DIR' or the Workbench's Export step, then open DIR.")
            return False
        try:
            inferencer = OnnxInferencer(folder, providers=["CPUExecutionProvider"])
        except (ValueError, OSError, KeyError) as exc:
            errors.show_error(self, "Cannot open the model", str(exc))
            return False
        meta = inferencer.metadata
        self.model_dir, self.inferencer = folder, inferencer
        self.threshold = meta.get("thresholds", {}).get("image", {}).get("value")
        scale = MapScale.from_metadata(meta)
        self.settings = MapSettings(scale, scale.threshold, min_area=int(meta.get("thresholds", {})
                                                                         .get("min_defect_area", 0) or 0))
        self._set_rows([])
        thr = "no threshold (scores only)" if self.threshold is None else f"threshold {self.threshold:.4g}"
        trained_on = meta.get("training", {}).get("dataset")
        what = f"{meta.get('method', '?')}" + (f" trained on {trained_on}" if trained_on else "")
        self.statusBar().showMessage(f"Model {folder.parent.name}/{folder.name}: {what}, {thr}")
        self.statusBar().setToolTip(str(folder))
        self.summary.setText(f"Model <b>{what}</b>, {thr}. Score a folder with File > Score folder.")
        return True

    def open_sample(self, category: str, wait: bool = False) -> Worker | None:
        """The shipped sample model of ``category`` on the sample test images."""
        from workbench.core.sample_models import shipped_models
        from workbench.package_data import sample_data_dir

        model = shipped_models()[category]
        if not self.open_model(model.export_dir):
            return None
        return self.score_folder(sample_data_dir() / category / "test", wait=wait)

    # ------------------------------------------------------------------ scoring
    def choose_folder(self) -> None:
        if self.inferencer is None:
            errors.show_error(self, "No model", "Open an exported model first (File > Open model).")
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to score")
        if folder:
            self.score_folder(Path(folder))

    def score_folder(self, folder: Path, wait: bool = False) -> Worker | None:
        """Score ``folder`` into a fresh output folder (CSV + overlays). ``wait``: in this thread
        (the self-test), else in a background worker."""
        items = folder_items(Path(folder))
        if not items:
            errors.show_error(self, "No images", f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}.")
            return None
        assert self.inferencer is not None and self.model_dir is not None
        self.out_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._tmp.name))
        self.folder = Path(folder)
        args = (self.inferencer, items, self.out_dir)
        kwargs: dict[str, Any] = {"fingerprint": model_fingerprint(self.model_dir), "threshold": self.threshold}
        self.summary.setText(f"Scoring {len(items)} image(s) of {folder} …")
        if wait:
            self._on_scored(predict_folder(*args, **kwargs))
            return None
        self.worker = Worker(predict_folder, *args, **kwargs)
        self.worker.finished.connect(self._on_scored)
        return self.jobs.start(self.worker, f"Score {folder}")

    def _on_scored(self, summary: PredictSummary) -> None:
        with open(summary.csv_path, newline="", encoding="utf-8") as fh:
            self._set_rows(list(csv.DictReader(fh)))
        bad = f", {summary.unreadable} unreadable" if summary.unreadable else ""
        self.summary.setText(f"{summary.total} image(s) scored: {summary.n_ng} NG, "
                             f"{summary.total - summary.n_ng - summary.unreadable} OK{bad}. "
                             "Select one to see its heat map; File > Export CSV saves the table.")
        if self.rows:
            self.table.selectRow(0)

    def _set_rows(self, rows: list[dict[str, str]]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            cells = (self._display_name(Path(row["path"])), row["score"], row["decision"])
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(row["path"])
                if j == 2 and text in ("OK", "NG"):
                    item.setForeground(QColor("#15803d" if text == "OK" else "#b91c1c"))
                self.table.setItem(i, j, item)
        if not rows:
            self.viewer.set_frame(None, "")
            self.verdict.setText("")

    def _display_name(self, path: Path) -> str:
        """The image's path inside the scored folder (two folders may both hold 000.png)."""
        try:
            return path.relative_to(self.folder).as_posix() if self.folder else path.name
        except ValueError:
            return path.name

    def show_row(self, row: int) -> None:
        """Render the selected image with its heat map (one onnxruntime pass, tens of ms)."""
        if not 0 <= row < len(self.rows) or self.inferencer is None or self.settings is None:
            return
        data = self.rows[row]
        path = Path(data["path"])
        try:
            image = read_image(path)
        except ImageReadError as exc:
            self.viewer.set_frame(None, f"Cannot show this image: {exc}")
            return
        _, maps = self.inferencer.predict([image])
        frame = render_frame(ImageRecord(path, "test", "unknown"), str(path), maps[0], self.settings, None)
        self.viewer.set_frame(frame)
        self.editor.set_image(frame.shape, frame.mask, frame.amap, self.settings.pixel_threshold)
        colour = {"OK": "#15803d", "NG": "#b91c1c"}.get(data["decision"], "#374151")
        self.verdict.setText(f"<span style='color:{colour}'>{data['decision'] or 'no decision'}</span>"
                             f"  score {data['score']}  ·  {self._display_name(path)}")

    # ------------------------------------------------------------------ export
    def choose_csv(self) -> None:
        if self.out_dir is None:
            errors.show_error(self, "Nothing scored yet", "Score a folder first (File > Score folder).")
            return
        target, _ = QFileDialog.getSaveFileName(self, "Save scores as", "scores.csv", "CSV (*.csv)")
        if target:
            self.export_csv(Path(target))

    def export_csv(self, target: Path) -> Path:
        assert self.out_dir is not None
        shutil.copyfile(self.out_dir / "scores.csv", target)
        self.statusBar().showMessage(f"Saved {target}", 5000)
        return target

    def choose_report(self) -> None:
        if self.out_dir is None:
            errors.show_error(self, "Nothing scored yet", "Score a folder first (File > Score folder).")
            return
        target, chosen = QFileDialog.getSaveFileName(self, "Save the inspection report as", "report.html",
                                                     "HTML report (*.html);;HTML and PDF report (*.html)")
        if target:
            self.export_report(Path(target), pdf="PDF" in chosen)

    def export_report(self, target: Path, pdf: bool = False, wait: bool = False) -> Worker | list[Path] | None:
        """The inspection report of the open model on the scored folder (HTML, optionally PDF beside
        it). Labels come from the folder names (good/ and one folder per defect type); without them
        the report shows scores and decisions only and says so. ``wait``: in this thread."""
        from workbench.core.results_csv import display_path
        from workbench.gui.report_pdf import write_folder_report

        if self.out_dir is None or self.model_dir is None or self.folder is None:
            errors.show_error(self, "Nothing scored yet", "Score a folder first (File > Score folder).")
            return None
        target = Path(target)
        if target.suffix.lower() not in (".html", ".htm"):
            target = target.with_suffix(".html")
        stems = {display_path(p): stem for p, stem in folder_items(self.folder)}
        args = (self.model_dir, self.folder, self.out_dir, target, target.with_suffix(".pdf") if pdf else None)
        if wait:
            return write_folder_report(*args, stems=stems)
        worker = Worker(write_folder_report, *args, stems=stems)
        worker.finished.connect(lambda paths: self.statusBar().showMessage(
            "Saved " + ", ".join(str(p) for p in paths), 8000))
        return self.jobs.start(worker, "Inspection report")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if self.worker is not None and self.worker.running:
            self.worker.cancel()
        super().closeEvent(event)


def report_libraries_missing() -> list[str]:
    """Libraries the inspection report needs that are not installed (a slim bundle may lack them)."""
    import importlib.util

    return [name for name in ("jinja2", "matplotlib", "scipy", "sklearn") if importlib.util.find_spec(name) is None]


def run_selftest() -> int:
    """Offscreen check of an installation or bundle: the shipped sample models score the sample
    images with the scores and decisions stored at build time, and the window shows them.
    Exit 0 only when everything matches."""
    from workbench.core.sample_models import check_sample_models, shipped_models
    from workbench.package_data import sample_data_dir

    app = _application(["--selftest"])
    failures = []
    for result in check_sample_models():
        print(f"{result.category}: {result.n_images} images, max score error {result.max_score_error:.2e}, "
              f"{len(result.decision_mismatches)} decision / {len(result.score_mismatches)} score mismatches")
        if not result.ok:
            failures.append(result.category)
    window = InspectorWindow()
    window.show()
    for category, model in shipped_models().items():
        window.open_sample(category, wait=True)
        app.processEvents()
        got = {Path(r["path"]).resolve(): r["decision"] for r in window.rows}
        root = sample_data_dir() / category
        want = {(root / k).resolve(): d for k, (_, d) in model.expected.items()}
        shown = window.viewer.frame is not None and window.viewer.frame.heat is not None
        if got != want or not shown:
            failures.append(f"{category} (window)")
        print(f"{category}: window scored {len(got)} images, heat map shown: {shown}")
    window.close()
    print("selftest", "FAILED: " + ", ".join(failures) if failures else "passed")
    return 1 if failures else 0


def _application(argv: list[str]) -> QApplication:
    from workbench.gui.app import app_icon, install_gui_thread_collector, load_style_sheet

    app = QApplication.instance() or QApplication(["workbench-inspector", *argv])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("Workbench")
    app.setApplicationVersion(workbench.__version__)
    app.setStyle("Fusion")
    app.setStyleSheet(load_style_sheet())
    app.setWindowIcon(app_icon())
    install_gui_thread_collector(app)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench-inspector", description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="exported model folder to open")
    parser.add_argument("folder", nargs="?", help="folder of images to score with it")
    parser.add_argument("--sample", metavar="CATEGORY", help="open a shipped sample model on the sample images")
    parser.add_argument("--selftest", action="store_true", help="check the installation offscreen and exit")
    parser.add_argument("--version", action="version", version=f"%(prog)s {workbench.__version__}")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.selftest:
        import os

        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return run_selftest()
    app = _application([])
    window = InspectorWindow()
    window.show()
    if args.sample:
        window.open_sample(args.sample)
    elif args.model and window.open_model(Path(args.model)) and args.folder:
        window.score_folder(Path(args.folder))
    return int(app.exec())


if __name__ == "__main__":
    raise SystemExit(main())
