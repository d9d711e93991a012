"""``workbench report --pdf`` in a process without a Qt application creates one that later
windows of the same process can use (Qt allows one application object per process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pdf_application_is_usable_by_widgets_afterwards(tmp_path):
    code = textwrap.dedent(f"""
        from workbench.gui.report_pdf import write_pdf
        from workbench.core.report.render import GENERATOR
        html = '<html><head><meta name="generator" content="' + GENERATOR + '"><title>t</title></head><body><h1>x</h1></body></html>'
        write_pdf(html, {str(tmp_path / 'r.pdf')!r})
        from PySide6.QtWidgets import QLabel
        label = QLabel('a window after the PDF')  # aborts when the application is a bare QGuiApplication
        print('widget ok', label.text())
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "widget ok" in proc.stdout, proc.stderr[-2000:]
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
