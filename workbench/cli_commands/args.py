"""Argument groups shared by several sub-commands (one spelling and one help text each)."""

from __future__ import annotations

import argparse


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--data/--category/--layout: which dataset a command reads."""
    p.add_argument("--data", required=required, help="dataset folder (MVTec, VisA or plain folders)")
    p.add_argument("--category", help="category inside a multi-category dataset (e.g. 'fabric')")
    p.add_argument("--layout", default="auto", choices=["auto", "mvtec", "visa", "folder"],
                   help="dataset layout (default: detect)")


def add_mask_args(p: argparse.ArgumentParser, scope: str) -> None:
    """--roi/--ignore: masks in the original image's coordinates."""
    p.add_argument("--roi", metavar="MASK.png",
                   help=f"inspect only inside the white area of this image (original image size; {scope})")
    p.add_argument("--ignore", metavar="MASK.png",
                   help=f"never inspect the white area of this image (original image size; {scope})")


def add_common_args(p: argparse.ArgumentParser) -> None:
    """--device/--quiet: every command that computes."""
    p.add_argument("--device", help="'cpu' or 'cuda' (default: CUDA when available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    """--cluster/--workers: score or train in other processes, or on a Ray cluster."""
    p.add_argument("--cluster", metavar="auto|local|ray://HOST:PORT",
                   help="spread the work: 'local' = a process pool on this computer; a Ray address "
                        "(ray://HOST:PORT or HOST:PORT of the head node); 'auto' = the Ray cluster in "
                        "RAY_ADDRESS, a local Ray instance, or (without Ray) a local process pool "
                        "(default: one process, no cluster)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes (default: one per CPU core of this computer or the cluster)")
