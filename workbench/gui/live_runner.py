"""Runs the core live loop off the GUI thread and hands its results to the GUI thread.

Why a thread and not the worker process training uses: the loop's heavy parts (onnxruntime,
OpenCV decoding, the torch forward pass) release the GIL, so a thread keeps the window
responsive, and results with their images do not have to be copied across a process
boundary at camera rate. The loop only talks to the GUI through small bounded deques
(``collections.deque`` appends and pops are thread-safe: the newest result, the last NG /
REVIEW ones, notices) that a QTimer in the GUI thread drains 10 times a second: Qt objects are touched only in the GUI thread, a fast camera can
never flood the event queue, and a slow window only skips frames on screen (never in the
log). Moving the loop into a child process later needs only a process-side writer for the
same two queues.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.core.calibration.policy import NG, REVIEW
from workbench.core.live import LiveInspection, LiveLog, load_live_scorer

log = logging.getLogger(__name__)

POLL_MS = 100
KEEP_FLAGGED = 12  # NG/REVIEW results waiting for the GUI at most (the strip shows as many)


class LiveRunner(QObject):
    """One live session at a time. Signals arrive in the GUI thread:
    ``result(LiveResult)`` the newest decision (at most one per poll), ``flagged(LiveResult)``
    every NG/REVIEW one, ``stats(dict)`` the session summary so far, ``notice(str)``,
    ``started(str)`` once the model is loaded, ``finished(dict)`` the final summary,
    ``failed(str)`` when the session could not start."""

    result = Signal(object)
    flagged = Signal(object)
    stats = Signal(object)
    notice = Signal(str)
    started = Signal(str)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session: LiveInspection | None = None
        self.summary: dict[str, Any] | None = None
        self._thread: threading.Thread | None = None
        self._latest: deque = deque(maxlen=1)  # each result carries its display images: keep few
        self._flagged: deque = deque(maxlen=KEEP_FLAGGED)
        self._notices: deque[str] = deque(maxlen=32)
        self._error: str | None = None
        self._announced = False
        self._stop = threading.Event()
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._poll)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, model_dir: str | Path, source_factory: Callable[[], Any], log_path: str | Path,
              copy_dir: str | Path | None = None, device: Any = None) -> None:
        """Load the model and start the loop in a thread (both off the GUI thread)."""
        if self.running:
            raise RuntimeError("A live session is already running; stop it first.")
        self._latest.clear()
        self._flagged.clear()
        self._notices.clear()
        self._error, self.summary, self.session, self._announced = None, None, None, False
        self._stop = threading.Event()
        stop = self._stop

        def run() -> None:
            try:
                source = source_factory()
                scorer = load_live_scorer(model_dir, device)
                with LiveLog(log_path) as live_log:
                    session = LiveInspection(scorer, source, log=live_log, copy_dir=copy_dir, render=True,
                                             on_result=self._keep, on_notice=self._notices.append,
                                             model_name=str(model_dir))
                    self.session = session
                    if stop.is_set():
                        return
                    self.summary = session.run()
            except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash
                log.exception("live session failed")
                self._error = str(exc) or type(exc).__name__

        self._thread = threading.Thread(target=run, name="live-session", daemon=True)
        self._thread.start()
        self.timer.start()

    def _keep(self, result) -> None:
        """Loop thread: hand the result over (older unshown ones fall out of the deques)."""
        self._latest.append(result)
        if result.verdict in (NG, REVIEW):
            self._flagged.append(result)

    def stop(self, wait_s: float = 0.0) -> None:
        """Ask the session to end (after its current frame); optionally wait for it."""
        self._stop.set()
        if self.session is not None:
            self.session.stop()
        if wait_s and self._thread is not None:
            self._thread.join(wait_s)
            if self.session is None or not self.running:
                self._poll()

    def _poll(self) -> None:
        session = self.session
        if session is not None and self._stop.is_set():
            session.stop()  # a stop that came while the model was loading
        if session is not None and not self._announced:
            self._announced = True
            self.started.emit(session.source.describe())
        while self._notices:
            self.notice.emit(self._notices.popleft())
        while self._flagged:
            self.flagged.emit(self._flagged.popleft())
        if self._latest:  # only this thread takes from the deques, so it cannot be empty now
            self.result.emit(self._latest.popleft())
        if session is not None:
            self.stats.emit(session.summary())
        if not self.running:
            self.timer.stop()
            if self._error is not None:
                self.failed.emit(self._error)
            elif self.summary is not None:
                self.stats.emit(self.summary)
                self.finished.emit(self.summary)
            else:
                self.finished.emit(session.summary() if session is not None else {})
            self._thread = None
