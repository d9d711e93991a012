"""Runs a sweep from the Method & Training step and puts each finished model in the workspace.

Thin on purpose: the core's :func:`workbench.core.cluster.sweep.sweep` plans and runs the
combinations in worker processes (a local process pool, so the window stays responsive) and
writes the leaderboard; this only starts it as a background job and registers the finished
models in the workspace's model table, also after a cancel or an error (the leaderboard on
disk says which combinations finished).
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from workbench.core.cluster.sweep import read_leaderboard, sweep
from workbench.core.workspace import DatasetEntry, Workspace
from workbench.gui.session import Session
from workbench.gui.widgets.job_progress import JobProgress
from workbench.gui.workers import Worker

log = logging.getLogger(__name__)


class SweepLauncher(QObject):
    def __init__(self, session: Session, progress: JobProgress, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.progress = session, progress
        self.job: Worker | None = None

    def sibling_datasets(self) -> list[DatasetEntry]:
        """The workspace's datasets of the current one's root folder (one per category)."""
        workspace, current = self.session.workspace, self.session.dataset_entry
        if workspace is None or current is None:
            return []
        return [e for e in workspace.datasets() if e.root == current.root and e.layout == current.layout]

    def start(self, entries: list[DatasetEntry], methods: list[str], grid: dict[str, list[str]],
              workers: int) -> Worker | None:
        workspace = self.session.workspace
        if workspace is None or not entries:
            return None
        out = workspace.models_dir / f"sweep-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        by_category = {e.category: e for e in entries}
        root, layout = entries[0].root, entries[0].layout
        worker = Worker(sweep, str(root), list(by_category), methods, grid, out, layout=layout, workers=workers)
        worker.finished.connect(lambda _o, ws=workspace: self._register(ws, out, by_category))
        worker.failed.connect(lambda _m, _d, ws=workspace: self._register(ws, out, by_category))
        worker.cancelled.connect(lambda ws=workspace: self._register(ws, out, by_category))
        title = f"Sweep: {len(methods)} method(s) x {len(entries)} dataset(s)"
        self.progress.attach(worker, title)
        self.job = self.session.jobs.start(worker, title)
        return worker

    def _register(self, workspace: Workspace, out: Path, by_category: dict[str | None, DatasetEntry]) -> None:
        """Every finished combination becomes a model of its dataset (once)."""
        if workspace is not self.session.workspace or workspace.closed:
            return
        known = {m.path.resolve() for m in workspace.models()}
        added = 0
        for row in read_leaderboard(out):
            entry = by_category.get(row.get("category") or None)
            if row.get("status") != "ok" or entry is None:
                if row.get("status") != "ok":
                    self.progress.append_log(f"Sweep: {row.get('category')} {row.get('method')} failed: "
                                             f"{row.get('error')}")
                continue
            folder = (out / row["model_dir"]).resolve()
            if folder in known:
                continue
            metrics: dict[str, Any] = {k: row.get(k) for k in ("image_auroc", "pixel_auroc", "aupro", "ms_per_image")}
            params = _params_of(row)
            name = f"{row['method']} sweep" + (f" {row['params']}" if params else "")
            workspace.add_model(entry.id, row["method"], folder, params, metrics, row.get("fit_seconds"), name=name)
            added += 1
            self.progress.append_log(f"Sweep: {name} on {entry.name}: image AUROC {_num(row.get('image_auroc'))}")
        if added:
            self.session.notify_models_changed()


def _params_of(row: dict[str, Any]) -> dict[str, Any]:
    import json

    try:
        params = json.loads(row.get("params") or "{}")
    except ValueError:
        return {}
    return params if isinstance(params, dict) else {}


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
