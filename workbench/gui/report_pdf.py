"""The inspection report as PDF, through Qt's own PDF writer (no browser needed).

The HTML report (``workbench.core.report``) is laid out by ``QTextDocument`` and printed with
``QPdfWriter``; its embedded ``data:`` images are handed to the document as resources. Qt's rich
text understands tables, headings and images but not every CSS rule, so the PDF is the same
content in a plainer layout. ``workbench report --pdf`` calls this from the command line: it
creates an offscreen Qt application when none is running. Usable from a worker thread
(painting on a PDF device is allowed outside the GUI thread).
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

from workbench.core.report.render import GENERATOR, check_report_target, write_report_bytes

DATA_URL = re.compile(r'src="(data:image/png;base64,([A-Za-z0-9+/=]+))"')
TITLE = re.compile(r"<title>(.*?)</title>", re.S)
PDF_DPI = 150


def ensure_gui_application():
    """The running Qt application, or a new offscreen one (command line).

    A ``QApplication`` (the widgets flavour of ``QGuiApplication``), not a bare
    ``QGuiApplication``: Qt allows one application object per process, and a later window in the
    same process (a test session, a script that also opens the GUI) needs the widgets one.
    """
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is None:
        from PySide6.QtWidgets import QApplication

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(["workbench-report"])
    return app


def pdf_bytes(html: str) -> bytes:
    """The report ``html`` printed to A4 PDF pages."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QSizeF, QUrl
    from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

    ensure_gui_application()
    doc = QTextDocument()
    for match in DATA_URL.finditer(html):
        image = QImage.fromData(base64.b64decode(match.group(2)), "PNG")
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(match.group(1)), image)
    doc.setHtml(html)
    title = TITLE.search(html)
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setCreator(GENERATOR)
    writer.setTitle(title.group(1).strip() if title else GENERATOR)
    writer.setResolution(PDF_DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                     QMarginsF(12, 12, 12, 12), QPageLayout.Unit.Millimeter))
    # Lay the text out on the printable width (in the writer's device pixels) so images of
    # 460 CSS px fit two in a row, as in the HTML.
    rect = writer.pageLayout().paintRectPixels(PDF_DPI)
    doc.setPageSize(QSizeF(rect.width(), rect.height()))
    doc.print_(writer)
    del writer  # finishes the PDF (the writer writes its trailer on destruction)
    buffer.close()
    data = bytes(buffer.data())
    if not data.startswith(b"%PDF"):
        raise RuntimeError("Qt's PDF writer produced no PDF")
    return data


def write_pdf(html: str, target: str | Path) -> Path:
    """Write the PDF of ``html`` to ``target`` atomically (checked like the HTML report)."""
    target = check_report_target(target, (".pdf",))
    return write_report_bytes(target, pdf_bytes(html))





def write_model_report(model_dir: Path, dataset, html_path: Path, pdf_path: Path | None = None, *,
                       calibration: str | None = None, progress=None, cancel=None) -> list[Path]:
    """The Export step's report job: check both targets, build the context (prediction cache
    reused), write the HTML and, when asked, the PDF. Returns the files written."""
    from workbench.core.report import model_report_context, render_html, write_html

    check_report_target(html_path, (".html", ".htm"))
    if pdf_path is not None:
        check_report_target(pdf_path, (".pdf",))
    context = model_report_context(model_dir, dataset, calibration=calibration, progress=progress, cancel=cancel)
    written = [write_html(context, html_path)]
    if pdf_path is not None:
        written.append(write_pdf(render_html(context), pdf_path))
    return written


def write_folder_report(export_dir: Path, folder: Path, run_dir: Path, html_path: Path, pdf_path: Path | None = None,
                        *, stems: dict[str, str] | None = None, progress=None, cancel=None) -> list[Path]:
    """The Inspector's report job: an exported package and the folder it scored (torch-free)."""
    from workbench.core.report import folder_report_context, render_html, write_html

    check_report_target(html_path, (".html", ".htm"))
    if pdf_path is not None:
        check_report_target(pdf_path, (".pdf",))
    context = folder_report_context(export_dir, folder, run_dir, stems=stems, progress=progress, cancel=cancel)
    written = [write_html(context, html_path)]
    if pdf_path is not None:
        written.append(write_pdf(render_html(context), pdf_path))
    return written
__all__ = ["ensure_gui_application", "pdf_bytes", "write_folder_report", "write_model_report", "write_pdf"]
