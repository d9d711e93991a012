"""Cyclic garbage is collected in the GUI thread only (a worker collecting widgets deadlocks Qt)."""

from __future__ import annotations

import gc
import threading


class _Cycle:
    """Garbage that records which thread finalised it."""

    finalised_in: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _Cycle.finalised_in.append(threading.current_thread().name)


def test_app_collects_cyclic_garbage_in_the_gui_thread_not_in_workers(qtbot, qapp):
    from workbench.gui.app import install_gui_thread_collector
    from workbench.gui.gc_in_gui_thread import GuiThreadCollector

    install_gui_thread_collector(qapp)
    install_gui_thread_collector(qapp)
    assert len(qapp.findChildren(GuiThreadCollector)) >= 1 and not gc.isenabled()
    gc.collect()
    _Cycle.finalised_in.clear()
    for _ in range(50):
        _Cycle()

    kept: list = []

    def allocate() -> None:  # enough live allocations to trigger an automatic collection if one were on
        kept.append([[i] for i in range(20_000)])

    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    assert "worker" not in _Cycle.finalised_in
    qtbot.waitUntil(lambda: len(_Cycle.finalised_in) == 50, timeout=5000)
    assert set(_Cycle.finalised_in) == {threading.main_thread().name}
