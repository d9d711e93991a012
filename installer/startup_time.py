"""Start-up time of a bundle (or any GUI command): launch -> its window is mapped on screen.

Run under an X server with xdotool installed, e.g.
    xvfb-run -a -s "-screen 0 1366x768x24" python installer/startup_time.py \\
        --title "Anomaly Inspector" -n 5 -- build/installer/dist/workbench-inspector/workbench-inspector
Prints each run and the median (seconds). The first run includes a cold file cache.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time


def one_run(command: list[str], title: str, timeout: float) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title],
                                   capture_output=True, text=True)
            if found.stdout.strip():
                return time.perf_counter() - start
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {proc.returncode} before showing a window")
            time.sleep(0.05)
        raise TimeoutError(f"no window titled {title!r} after {timeout} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for_display(timeout: float) -> None:
    """xvfb-run may start the command before the X server accepts clients; Qt aborts then."""
    start = time.perf_counter()
    while subprocess.run(["xdotool", "getdisplaygeometry"], capture_output=True).returncode != 0:
        if time.perf_counter() - start > timeout:
            raise TimeoutError("no X display answered")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--title", required=True, help="window title to wait for")
    parser.add_argument("-n", type=int, default=5, help="runs (default 5)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    wait_for_display(args.timeout)
    times = []
    for i in range(args.n):
        times.append(one_run(args.command, args.title, args.timeout))
        print(f"run {i + 1}: {times[-1]:.2f} s")
    print(f"median {statistics.median(times):.2f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
