"""The inspection report: one self-contained HTML file (and a PDF of it, written by the GUI's Qt).

``context`` gathers the numbers (from the metrics core), figures (matplotlib) and gallery
(overlays); ``render`` fills the jinja2 template and writes the file. Torch-free at import:
the Inspector writes reports without torch (tests/test_torch_free.py).
"""

from workbench.core.report.context import folder_report_context, model_report_context
from workbench.core.report.render import (GENERATOR, ReportTargetError, check_report_target, is_report_file,
                                          render_html, write_html)

__all__ = ["GENERATOR", "ReportTargetError", "check_report_target", "folder_report_context", "is_report_file",
           "model_report_context", "render_html", "write_html"]
