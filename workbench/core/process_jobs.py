"""Run a core job in a separate process: progress, cancel, result and error over a pipe.

Why a process and not a thread: training and prediction in the GUI process compete with the
event loop for the GIL and for the CPU (the window stalled for 150-570 ms), and a crash inside
a method (segfault, out of memory) would take the window and unsaved labels with it. A child
process computes; the caller (the GUI's QThread worker, or any thread) blocks in
:func:`run_job` and receives plain picklable messages:

* ``("progress", stage, current, total, message, metrics)``: becomes a :class:`ProgressEvent`;
* ``("result", value)``: the job's return value (small: numbers, paths, dicts, arrays; large
  outputs are files the job wrote, e.g. the prediction cache in the model folder);
* ``("error", type_name, message, traceback_text)``: re-raised as :class:`ChildJobError`;
* ``("cancelled",)``: re-raised as :class:`Cancelled`.

Cancel is cooperative first (a shared event the child's :class:`CancelToken` reads at each
step); a child that has not stopped :data:`CANCEL_GRACE_S` later is terminated, so a cancel
takes effect within a second. A child that dies without a last message (killed, segfault,
out of memory) raises :class:`WorkerCrashed` with a message saying that nothing was saved.

Start cost: a spawned interpreter that imports torch and the core takes 3-5 s on a 2-core
laptop, longer than many jobs. So children are one-shot (one job each: memory is returned
and a crash takes only that job) but started ahead: :class:`SpareProcesses` keeps one idle
child that has already imported the core, and the next job takes it (a few ms).

No Qt here: the GUI's :mod:`workbench.gui.workers` drives this from its QThreads. Which
callables go to a child is declared with :func:`process_job`; :func:`call` runs such a
callable in a child when the calling thread is inside :func:`compute_in_process`, and
in the calling thread otherwise (tests, the CLI, nested calls in a child).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import inspect
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from workbench.core.jobs import CancelToken, Cancelled, ProgressCallback, ProgressEvent

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 0.4  # after a cancel, the child has this long to stop on its own before it is terminated
POLL_S = 0.05  # how often the waiting thread checks for messages, cancel and a dead child
PROGRESS_INTERVAL_S = 0.05  # the child sends at most ~20 plain progress updates per second
PRELOAD = ("torch", "workbench.core.workflows")  # what a spare child imports while it waits
DEVICES = ("cpu", "cuda")


class WorkerCrashed(RuntimeError):
    """The compute process ended without a result or an error (killed, crashed, out of memory)."""


class ChildJobError(RuntimeError):
    """The job raised in the child; ``details`` is the child's traceback, ``kind`` its type name."""

    def __init__(self, message: str, kind: str = "", details: str = "") -> None:
        super().__init__(message)
        self.kind, self.details = kind, details


@dataclass(frozen=True)
class ComputeOptions:
    """How a child computes: torch CPU threads (0 = every core) and device ('cpu', 'cuda' or
    None for the default: CUDA when available). Passed in by the caller: a child never reads
    the GUI's settings."""

    threads: int = 0
    device: str | None = None
    nice: int = 0  # added to the child's scheduling niceness (POSIX): > 0 lets the window win the CPU

    def __post_init__(self) -> None:
        if not 0 <= self.nice <= 19:
            raise ValueError(f"nice must be 0..19, got {self.nice}")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 (all cores) or more, got {self.threads}")
        if self.device is not None and self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)} or None (auto), got {self.device!r}")


# ----------------------------------------------------------------------------- declaring jobs
def process_job(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` (a module-level function taking ``progress``/``cancel`` keywords) as a job
    that :func:`call` runs in a child process. Returns a wrapper that, called directly, simply
    calls ``fn``; the child imports ``fn`` by its module path."""

    @functools.wraps(fn)
    def job(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    job.process_target = f"{fn.__module__}:{fn.__qualname__}"  # type: ignore[attr-defined]
    return job


def target_of(fn: Callable[..., Any]) -> str | None:
    """The ``module:function`` path of a :func:`process_job`, None for any other callable."""
    return getattr(fn, "process_target", None)


def resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "__wrapped__", obj)


# ----------------------------------------------------------------------------- the child
class _ChildReporter:
    """Progress sink in the child: coalesces plain updates (a tight loop must not flood the
    pipe); stage changes, live metrics and the last step of a stage always get through."""

    def __init__(self, conn) -> None:
        self.conn, self._last, self._stage = conn, 0.0, None

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        last_step = event.total > 0 and event.current >= event.total
        if event.metrics or last_step or event.stage != self._stage or now - self._last >= PROGRESS_INTERVAL_S:
            self._last, self._stage = now, event.stage
            self.conn.send(("progress", event.stage, int(event.current), int(event.total), str(event.message),
                            {str(k): float(v) for k, v in event.metrics.items()}))


def _exit_with_parent() -> None:
    """A child whose parent died (GUI killed) stops at once instead of training for nobody."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _apply_options(options: ComputeOptions) -> None:
    """Torch's CPU threads and a CUDA check; a child that has not imported torch (a torch-free
    job, or a bare test child) gets ``OMP_NUM_THREADS`` instead of paying the import here."""
    threads = options.threads if options.threads > 0 else (os.cpu_count() or 1)
    if options.nice and hasattr(os, "nice"):
        os.nice(options.nice)
    if "torch" not in sys.modules and options.device != "cuda":
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when a job imports it
        return
    import torch

    torch.set_num_threads(threads)
    if options.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("The device setting is 'cuda' but no CUDA GPU is available to torch; "
                           "choose 'auto' or 'cpu' in the settings.")


def _child_main(conn, cancel_event, preload: tuple[str, ...]) -> None:
    """Entry point of a child: import ``preload``, wait for one job, run it, report, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal is for the parent
    _exit_with_parent()
    for module in preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    conn.send(("ready",))
    try:
        message = conn.recv()
    except (EOFError, OSError):
        return  # the parent closed the spare without a job
    if message[0] != "run":
        return
    _, target, args, kwargs, options = message
    try:
        _apply_options(options)
        fn = resolve(target)
        if options.device is not None and "device" in inspect.signature(fn).parameters:
            kwargs.setdefault("device", options.device)
        result = fn(*args, progress=_ChildReporter(conn), cancel=CancelToken(cancel_event), **kwargs)
    except Cancelled:
        conn.send(("cancelled",))
        return
    except BaseException as exc:  # everything reaches the parent as a message, nothing as a dead child
        conn.send(("error", type(exc).__name__, str(exc).strip() or type(exc).__name__, traceback.format_exc()))
        return
    if cancel_event.is_set():
        conn.send(("cancelled",))
        return
    try:
        conn.send(("result", result))
    except Exception as exc:  # an unpicklable result is a programming error: say which
        conn.send(("error", type(exc).__name__, f"The result of {target} could not be sent back: {exc}",
                   traceback.format_exc()))


# ----------------------------------------------------------------------------- the parent
class ChildProcess:
    """One spawned child, idle until :meth:`run` hands it a job; used once."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD) -> None:
        ctx = multiprocessing.get_context("spawn")  # fork would copy the GUI's threads and Qt state
        self.conn, child_conn = ctx.Pipe()
        self.cancel_event = ctx.Event()
        self.process = ctx.Process(target=_child_main, args=(child_conn, self.cancel_event, preload),
                                   name="workbench compute", daemon=False)
        self.process.start()
        child_conn.close()
        self.started_at = time.monotonic()
        self.used = False
        self.ready = False  # True once the child has imported ``preload`` (its "ready" message)

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the child to finish its imports (before any job)."""
        if not self.ready and not self.used and self.conn.poll(timeout_s):
            try:
                self.ready = self.conn.recv()[0] == "ready"
            except (EOFError, OSError):
                return False
        return self.ready

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, grace_s: float = 0.2) -> None:
        """Terminate (then kill) the child if it still runs, and release its pipe."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(grace_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        self.conn.close()

    def run(self, target: str, args: tuple, kwargs: dict, options: ComputeOptions,
            progress: ProgressCallback | None, cancel: CancelToken) -> Any:
        """Send the job, relay its messages until it ends, and return its result (or raise)."""
        if self.used:
            raise RuntimeError("A compute process runs one job; take a new one.")
        self.used = True
        try:
            self.conn.send(("run", target, args, kwargs, options))
        except (OSError, ValueError) as exc:
            self.stop()
            raise WorkerCrashed(f"The compute process could not be started ({exc}).") from exc
        stage = "starting"
        cancel_sent_at: float | None = None
        try:
            while True:
                if cancel.cancelled and cancel_sent_at is None:
                    self.cancel_event.set()
                    cancel_sent_at = time.monotonic()
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > CANCEL_GRACE_S:
                    self.stop()  # did not stop on its own: terminate, so a cancel takes < 1 s
                    raise Cancelled("the job was cancelled")
                try:
                    ready = self.conn.poll(POLL_S)
                    message = self.conn.recv() if ready else None
                except (EOFError, OSError):
                    message, ready = None, False
                    self.process.join(1.0)
                if message is None:
                    if not self.process.is_alive():
                        if cancel_sent_at is not None:
                            raise Cancelled("the job was cancelled")
                        raise WorkerCrashed(crash_message(self.process.exitcode, stage))
                    continue
                kind = message[0]
                if kind == "ready":
                    self.ready = True
                elif kind == "progress":
                    _, stage, current, total, text, metrics = message
                    if progress is not None and not cancel.cancelled:
                        progress(ProgressEvent(stage, current, total, text, metrics))
                elif kind == "result":
                    return message[1]
                elif kind == "cancelled":
                    raise Cancelled("the job was cancelled")
                elif kind == "error":
                    _, type_name, text, details = message
                    raise ChildJobError(text, type_name, details)
        finally:
            self.process.join(0.1)  # a finished child exits at once; one that lingers is stopped
            self.stop()


def crash_message(exitcode: int | None, stage: str) -> str:
    """What the user reads when the compute process died without saying why."""
    how = f"exit code {exitcode}"
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    hint = (" The system may have run out of memory: try a smaller image size or fewer CPU threads."
            if exitcode in (-signal.SIGKILL, -signal.SIGSEGV) else "")
    return (f"The compute process stopped unexpectedly ({how}) during '{stage}'. Nothing from this job was "
            f"saved; the workspace, models and labels are unchanged and the application keeps working.{hint}")


class SpareProcesses:
    """Children started ahead of need, so a job does not wait 3-5 s for torch to import.

    Holds at most ``size`` idle children; :meth:`take` returns one (or starts one when none is
    ready) and :meth:`refill` starts the next. Started lazily, stopped at interpreter exit.
    """

    def __init__(self, size: int = 1, preload: tuple[str, ...] = PRELOAD) -> None:
        self.size, self.preload = size, preload
        self._idle: list[ChildProcess] = []
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    def take(self) -> ChildProcess:
        with self._lock:
            while self._idle:
                child = self._idle.pop(0)
                if child.alive():
                    return child
                child.stop()
        return ChildProcess(self.preload)

    def refill(self) -> None:
        """Start idle children up to ``size`` (a few ms each; their imports run in the child)."""
        with self._lock:
            if self._closed:
                return
            for child in [c for c in self._idle if not c.alive()]:
                child.stop()
                self._idle.remove(child)
            while len(self._idle) < self.size:
                self._idle.append(ChildProcess(self.preload))

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every idle child has imported its modules (benchmarks: measure jobs, not
        imports); True when all are ready in time."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            idle = list(self._idle)
        return all(c.wait_ready(max(0.0, deadline - time.monotonic())) for c in idle)

    @property
    def idle_count(self) -> int:
        with self._lock:
            return sum(c.alive() for c in self._idle)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for child in idle:
            child.stop()

    def reopen(self) -> None:
        with self._lock:
            self._closed = False


SPARES = SpareProcesses()


# ----------------------------------------------------------------------------- running jobs
_context = threading.local()


@contextlib.contextmanager
def compute_in_process(options: ComputeOptions | None, on_child: Callable[[ChildProcess | None], None] | None = None
                       ) -> Iterator[None]:
    """Within this block, :func:`call` in this thread runs :func:`process_job` callables in a
    child with ``options`` (``None``: in this thread). ``on_child`` hears each child that
    starts (and ``None`` when it ended), e.g. to show or kill its process id."""
    saved = getattr(_context, "value", None)
    _context.value = (options, on_child)
    try:
        yield
    finally:
        _context.value = saved


def active_options() -> ComputeOptions | None:
    """The options of the enclosing :func:`compute_in_process` in this thread (None: in-thread)."""
    value = getattr(_context, "value", None)
    return None if value is None else value[0]


def call(fn: Callable[..., Any], *args: Any, progress: ProgressCallback | None = None, cancel: CancelToken,
         **kwargs: Any) -> Any:
    """``fn(*args, progress=, cancel=, **kwargs)``: in a child when ``fn`` is a
    :func:`process_job` and the thread is inside :func:`compute_in_process`, else right here."""
    target = target_of(fn)
    options, on_child = getattr(_context, "value", None) or (None, None)
    if target is None or options is None:
        return fn(*args, progress=progress, cancel=cancel, **kwargs)
    return run_job(target, args, kwargs, options, progress=progress, cancel=cancel, on_child=on_child)


def run_job(target: str, args: tuple = (), kwargs: dict | None = None, options: ComputeOptions = ComputeOptions(),
            *, progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
            on_child: Callable[[ChildProcess | None], None] | None = None, spares: SpareProcesses = SPARES) -> Any:
    """Run ``target`` (``'module:function'``) in a child and return its result; blocks the
    calling thread (never call it in a GUI thread). Raises what the job raised (as
    :class:`ChildJobError`), :class:`Cancelled`, or :class:`WorkerCrashed`."""
    cancel = cancel or CancelToken()
    cancel.raise_if_cancelled()
    child = spares.take()
    if on_child is not None:
        on_child(child)
    try:
        return child.run(target, args, dict(kwargs or {}), options, progress, cancel)
    finally:
        if on_child is not None:
            on_child(None)
        # the next job starts warm; started from its own thread so that this job's end is not delayed
        threading.Thread(target=spares.refill, name="spare compute process", daemon=True).start()


__all__ = ["CANCEL_GRACE_S", "active_options", "ChildJobError", "ChildProcess", "ComputeOptions", "SPARES", "SpareProcesses",
           "WorkerCrashed", "call", "compute_in_process", "crash_message", "process_job", "resolve", "run_job",
           "target_of"]
