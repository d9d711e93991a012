"""Frozen entry point of the full Workbench bundle (``workbench``).

``--selftest`` (offscreen): the shipped sample models score the sample images with torch (the
training packages) and with onnxruntime (their exports); scores and decisions must equal the
values stored when the models were built. Anything else goes to the ``workbench`` command
(no argument opens the desktop application).
"""

import sys


def selftest() -> int:
    import os

    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from workbench.core.sample_models import check_sample_models, check_sample_packages

    failures = [r.category for r in check_sample_models() if not r.ok]
    for result in check_sample_packages():
        print(f"{result.category} (torch): {result.n_images} images, max score error "
              f"{result.max_score_error:.2e}, {len(result.decision_mismatches)} decision mismatches")
        failures += [] if result.ok else [f"{result.category} (torch)"]
    from workbench.gui.app import create_application
    from workbench.gui.main_window import MainWindow

    app = create_application(["workbench"])
    window = MainWindow(restore_last=False)
    window.show()
    app.processEvents()
    window.close()
    print("selftest", "FAILED: " + ", ".join(failures) if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    import multiprocessing

    # First: the desktop app computes in spawned child processes, and in a frozen bundle each
    # child is this executable started again; freeze_support() runs the child and exits.
    multiprocessing.freeze_support()
    if "--selftest" in sys.argv[1:]:
        raise SystemExit(selftest())
    from workbench.cli import main

    raise SystemExit(main())
