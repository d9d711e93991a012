"""Frozen entry point of the Inspector bundle (``workbench-inspector``)."""

from workbench.gui.inspector import main

if __name__ == "__main__":
    raise SystemExit(main())
