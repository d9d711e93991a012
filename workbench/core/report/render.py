"""Render the report context to one self-contained HTML file with jinja2, and write it safely.

The template lives in package data (``workbench/resources/report/``, found with
``importlib.resources`` like the style sheet), so it travels with a wheel and a frozen bundle.
Every image is a ``data:`` URL: the file can be mailed or archived alone. Output files are
written atomically, and an existing file is replaced only when it is an earlier report (a
report carries :data:`GENERATOR` in its head; a PDF written by the workbench carries it as its
creator): a mistyped ``--out`` never overwrites an image, a dataset file or a document.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from workbench.core.files import atomic_write_bytes

GENERATOR = "Anomaly Inspection Workbench report"
TEMPLATE = "report.html.j2"
SNIFF_BYTES = 64 * 1024


class ReportTargetError(ValueError):
    """The report cannot be written where asked (the message says why and what to do)."""


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _sig(value: Any, digits: int = 5) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}g}"


def _percent(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.{digits}f}%"


def environment():
    import jinja2

    from workbench.package_data import resource_path

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_path("report"))),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_number, sig=_sig, pct=_percent)
    return env


def render_html(context: dict[str, Any]) -> str:
    """The report as one HTML document (template ``resources/report/report.html.j2``)."""
    return environment().get_template(TEMPLATE).render(generator=GENERATOR, **context)


def is_report_file(path: Path) -> bool:
    """True when ``path`` is a report this module (HTML) or the Qt PDF writer wrote."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            if head.startswith(b"%PDF"):
                fh.seek(max(0, path.stat().st_size - SNIFF_BYTES))
                head += fh.read()
    except OSError:
        return False
    marker = GENERATOR.encode("ascii")
    if head.startswith(b"%PDF"):
        return marker in head or marker.decode().encode("utf-16-be") in head
    return f'<meta name="generator" content="{GENERATOR}">'.encode("ascii") in head


def check_report_target(target: str | Path, suffixes: tuple[str, ...]) -> Path:
    """Refuse a target that is a folder, has the wrong suffix, or is an existing file that is
    not an earlier report (it would be lost)."""
    target = Path(target)
    if target.suffix.lower() not in suffixes:
        raise ReportTargetError(f"Cannot write the report to '{target}': the file name must end in "
                                f"{' or '.join(suffixes)}.")
    if target.is_dir():
        raise ReportTargetError(f"Cannot write the report to '{target}': it is a folder. Give a file name, "
                                f"e.g. '{target / ('report' + suffixes[0])}'.")
    if target.is_symlink():
        raise ReportTargetError(f"Cannot write the report to '{target}': it is a symbolic link. Give the real file.")
    if target.exists() and not is_report_file(target):
        raise ReportTargetError(f"Cannot write the report to '{target}': the file exists and is not a workbench "
                                "report, so it would be lost. Choose a new file name.")
    if not target.parent.is_dir():
        raise ReportTargetError(f"Cannot write the report to '{target}': the folder '{target.parent}' does not "
                                "exist. Create it first.")
    return target


def write_report_bytes(target: Path, data: bytes) -> Path:
    """Write atomically, then give the file the usual permissions of a new document (the atomic
    write's temporary file is private to its owner; a report is meant to be shared)."""
    import os

    atomic_write_bytes(target, data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(target, 0o666 & ~umask)
    return target


def write_html(context: dict[str, Any], target: str | Path) -> Path:
    """Render and write atomically (checked first: see :func:`check_report_target`)."""
    target = check_report_target(target, (".html", ".htm"))
    return write_report_bytes(target, render_html(context).encode("utf-8"))


__all__ = ["GENERATOR", "ReportTargetError", "check_report_target", "is_report_file", "render_html", "write_html"]
