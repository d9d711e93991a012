"""Subcommands that live in a module of their own.

Why: ``cli.py`` holds the original commands and the shared plumbing (progress bars, exit codes,
error reporting). Newer commands (report, inspect, explain, audit, sweep, ...) each get one module
here with a ``register(sub)`` function that adds its sub-parser and sets ``func``. The list below
is explicit rather than discovered at run time so that frozen bundles (PyInstaller) see every
command as a plain import. Each module must import heavy libraries (torch, Qt) lazily inside its
command function, so that ``workbench --help`` stays fast and torch-free.
"""

from __future__ import annotations

import argparse
import importlib

#: Module names under ``workbench.cli_commands``, one per line, in ``--help`` order.
COMMAND_MODULES: tuple[str, ...] = (
    "report",
    "inspect",
    "audit",
    "explain",
    "update",
    "sweep",
)


def register_all(sub: argparse._SubParsersAction) -> None:
    """Add every module's sub-command to the ``workbench`` parser."""
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"workbench.cli_commands.{name}")
        module.register(sub)
