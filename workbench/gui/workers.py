"""The one way the GUI runs long calls into the core: :class:`Worker` + :class:`JobRunner`.

Why the compute object and the public object are separate: a signal emitted in a worker
thread runs plain-callable slots (lambdas, ``functools.partial``) *in that worker thread*,
where touching a widget crashes Qt. So the call runs in a private ``_Task`` moved to a
QThread, and the public :class:`Worker` stays in the GUI thread and re-emits every signal
there. Anything connected to a Worker's signals runs in the GUI thread, whatever its type.

Cancellation is cooperative (see :mod:`workbench.core.jobs`): :meth:`Worker.cancel` sets the
token and the core raises ``Cancelled`` at its next step, which becomes ``cancelled``.

Heavy jobs compute in a child process (:mod:`workbench.core.process_jobs`): functions marked
with ``process_job`` (training, evaluation, folder inference, the prediction of the Threshold and
Review steps; see :mod:`.pipelines`) are sent to a spawned child by the worker's QThread, which
waits for the child's messages and emits the same signals. The GUI process then keeps its GIL
and its cores for the window, and a crash in a method ends only the child (``failed`` with a
clear message). The torch threads and device of the child come from the settings
(:func:`~workbench.gui.settings.load_settings`), read by :class:`JobRunner` when a job starts.
Small jobs (import, label exchange, metrics from cached predictions, one reconstruction) run in
the QThread: a child would cost more to start than they take.

Switch: ``WORKBENCH_JOBS_IN_THREAD=1`` in the environment (or :func:`set_jobs_in_process`)
runs every job in its QThread as before; the GUI tests use it so that each small job does not
pay a process start, and test the process path explicitly.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QWidget

from workbench.core.jobs import CancelToken, Cancelled, ProgressEvent
from workbench.core.process_jobs import (SPARES, ChildJobError, ChildProcess, ComputeOptions, WorkerCrashed, call,
                                         compute_in_process)

log = logging.getLogger(__name__)
_jobs_in_process = os.environ.get("WORKBENCH_JOBS_IN_THREAD", "").strip().lower() not in ("1", "true", "yes")


def jobs_in_process() -> bool:
    """True (the default) when :class:`JobRunner` sends heavy jobs to a child process."""
    return _jobs_in_process


def set_jobs_in_process(enabled: bool) -> None:
    """Process (default) or QThread execution for jobs started from now on; see the module text."""
    global _jobs_in_process
    _jobs_in_process = bool(enabled)


def prestart_compute_process() -> None:
    """Start the spare child now (it imports torch in the background), so the first job starts
    at once instead of 3-5 s later. Nothing happens when jobs run in threads."""
    if _jobs_in_process:
        SPARES.refill()

COMPUTE_NICE = 10  # compute processes yield the CPU to the window when both want it (POSIX; no effect when idle)
PROGRESS_INTERVAL_S = 0.05  # at most ~20 plain progress updates per second reach the GUI
PENDING, RUNNING, FINISHED, FAILED, CANCELLED = "pending", "running", "finished", "failed", "cancelled"


def error_message(exc: BaseException) -> str:
    """One line for the error dialog: the core's messages already say what to do."""
    text = str(exc).strip()
    return text if text else type(exc).__name__


class _Task(QObject):
    """Runs ``fn`` once inside the worker thread and reports how it ended."""

    progress = Signal(object)
    done = Signal(str, object)  # (FINISHED | FAILED | CANCELLED, payload)

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, token: CancelToken) -> None:
        super().__init__()
        self._fn, self._args, self._kwargs, self._token = fn, args, kwargs, token
        self._last_emit = 0.0
        self._last_stage: str | None = None
        self.options: ComputeOptions | None = None  # set before start: heavy calls go to a child
        self.child: ChildProcess | None = None  # the child computing right now (set in the worker thread)

    def _on_child(self, child: ChildProcess | None) -> None:
        self.child = child

    def report(self, event: ProgressEvent) -> None:
        """Progress sink handed to the core. Coalesces plain updates so that a tight loop
        cannot flood the GUI's event queue; stage changes, live metrics and the last step
        of a stage always get through."""
        now = time.monotonic()
        last_step = event.total > 0 and event.current >= event.total
        if (event.metrics or last_step or event.stage != self._last_stage
                or now - self._last_emit >= PROGRESS_INTERVAL_S):
            self._last_emit, self._last_stage = now, event.stage
            self.progress.emit(event)

    @Slot()
    def run(self) -> None:
        try:
            with compute_in_process(self.options, on_child=self._on_child):
                result = call(self._fn, *self._args, progress=self.report, cancel=self._token, **self._kwargs)
        except Cancelled:
            self.done.emit(CANCELLED, None)
        except ChildJobError as exc:  # raised in the child: its own traceback is the useful one
            self.done.emit(FAILED, (error_message(exc), exc.details))
        except WorkerCrashed as exc:  # the child died: the message says what happened and what is safe
            self.done.emit(FAILED, (error_message(exc), traceback.format_exc()))
        except Exception as exc:  # every failure reaches the user as a dialog, never a crash
            self.done.emit(FAILED, (error_message(exc), traceback.format_exc()))
        else:
            # A cancel that arrived after the last check still wins: the user asked for no result.
            self.done.emit(CANCELLED if self._token.cancelled else FINISHED, result)
        finally:
            thread = self.thread()
            if thread is not None:
                thread.quit()


class Worker(QObject):
    """A call ``fn(*args, progress=..., cancel=..., **kwargs)`` run off the GUI thread.

    Signals (always delivered in the GUI thread): ``progress(ProgressEvent)``,
    ``finished(result)``, ``failed(message, details)``, ``cancelled()``, and ``ended()``
    after any of the three once the thread has stopped. Start it with :meth:`JobRunner.start`.
    """

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    ended = Signal()

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.token = CancelToken()
        self.title = getattr(fn, "__name__", "job")
        self.state = PENDING
        self.result: Any = None
        self.error: tuple[str, str] | None = None
        self._task = _Task(fn, args, kwargs, self.token)
        self._task.progress.connect(self._on_progress)
        self._task.done.connect(self._on_done)
        self._thread: QThread | None = None
        self._started = False

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Move the task to a new thread and run it (normally via :meth:`JobRunner.start`)."""
        if self._started:
            raise RuntimeError("A Worker runs once; create a new one to run again.")
        self._started = True
        self._thread = QThread()
        self._thread.setObjectName(f"worker: {self.title}")
        self._task.moveToThread(self._thread)
        self._thread.started.connect(self._task.run)
        self._thread.finished.connect(self._on_thread_finished)
        self.state = RUNNING
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next step (safe to call from the GUI thread any time); a
        child process that does not stop within half a second is terminated."""
        self.token.cancel()

    @property
    def compute_options(self) -> ComputeOptions | None:
        """Threads and device of the child process; None runs the job in the QThread."""
        return self._task.options

    @compute_options.setter
    def compute_options(self, options: ComputeOptions | None) -> None:
        if self._started:
            raise RuntimeError("Set compute_options before the worker starts.")
        self._task.options = options

    @property
    def process_pid(self) -> int | None:
        """Process id of the child computing this job right now (None: none, or in-thread)."""
        child = self._task.child
        return None if child is None else child.pid

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread has stopped; only for shutdown, never during normal use."""
        return self._thread is None or self._thread.wait(timeout_ms)

    # ------------------------------------------------------------------ relays (GUI thread)
    @Slot(object)
    def _on_progress(self, event: ProgressEvent) -> None:
        if self.state == RUNNING and not self.token.cancelled:
            self.progress.emit(event)

    @Slot(str, object)
    def _on_done(self, kind: str, payload: object) -> None:
        self.state = kind
        if kind == FINISHED:
            self.result = payload
            self.finished.emit(payload)
        elif kind == FAILED:
            self.error = payload  # type: ignore[assignment]
            self.failed.emit(*payload)  # type: ignore[misc]
        else:
            self.cancelled.emit()

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.wait()  # returns at once: the thread has left its event loop; Python frees it
        self.ended.emit()


class JobRunner(QObject):
    """Owns every running :class:`Worker`: keeps them alive, counts them for the status bar,
    shows failures in an error dialog and stops them all when the application closes."""

    activeCountChanged = Signal(int)

    def __init__(self, dialog_parent: QWidget | None = None, parent: QObject | None = None,
                 settings: Callable[[], Any] | None = None) -> None:
        super().__init__(parent)
        self.dialog_parent = dialog_parent
        self._workers: list[Worker] = []
        self._settings = settings  # returns AppSettings; default: load_settings()
        self.nice = COMPUTE_NICE  # > 0: the compute process yields the CPU to the window first

    def compute_options(self) -> ComputeOptions | None:
        """Threads and device for a job's child process from the user's settings (read now, in
        the GUI thread: a child never reads QSettings); None when jobs run in threads."""
        if not _jobs_in_process:
            return None
        if self._settings is None:
            from workbench.gui.settings import load_settings

            values = load_settings()
        else:
            values = self._settings()
        return ComputeOptions(threads=int(values.cpu_threads), device=None if values.device == "auto" else values.device,
                              nice=self.nice)

    def start(self, worker: Worker, title: str | None = None, show_errors: bool = True) -> Worker:
        """Run ``worker`` in its own thread (its heavy calls in a child process, see the module
        text). Failures open an error dialog unless told not to."""
        if title:
            worker.title = title
        if worker.compute_options is None and not worker._started:
            worker.compute_options = self.compute_options()
        self._workers.append(worker)
        if show_errors:
            worker.failed.connect(lambda msg, details, w=worker: self._show_error(w, msg, details))
        worker.ended.connect(lambda w=worker: self._forget(w))
        worker.start()
        self.activeCountChanged.emit(self.active_count)
        return worker

    def run(self, fn: Callable[..., Any], *args: Any, title: str | None = None, **kwargs: Any) -> Worker:
        """Shortcut: ``start(Worker(fn, *args, **kwargs), title)``."""
        return self.start(Worker(fn, *args, **kwargs), title)

    @property
    def active_count(self) -> int:
        """Jobs whose thread has not stopped yet (what ``activeCountChanged`` reports)."""
        return len(self._workers)

    @property
    def workers(self) -> list[Worker]:
        return list(self._workers)

    def cancel_all(self) -> None:
        for worker in self._workers:
            worker.cancel()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every job and wait for its thread; True when all stopped in time."""
        self.cancel_all()
        deadline = time.monotonic() + timeout_ms / 1000
        ok = True
        for worker in list(self._workers):
            left = max(0, int((deadline - time.monotonic()) * 1000))
            if not worker.wait(left):
                log.warning("Job %r did not stop within %d ms", worker.title, timeout_ms)
                ok = False
        return ok

    def _forget(self, worker: Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        self.activeCountChanged.emit(self.active_count)

    def _show_error(self, worker: Worker, message: str, details: str) -> None:
        from workbench.gui.widgets import errors  # looked up at call time so tests can patch it

        log.error("%s failed: %s\n%s", worker.title, message, details)
        errors.show_error(self.dialog_parent, f"{worker.title} failed", message, details)
