"""How fast the command line answers: ``xraykit --help`` against ``python -c pass`` in the same run.

    python benchmarks/cli_startup.py [--repeats 10]

Prints the median wall time of each (fresh processes, one at a time) and their ratio and
difference. Every command imports torch only when it runs, so help and ``--version`` pay
only for Python, Typer and Rich. Run it on an idle machine: another torch process on two cores
makes every start-up slower.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "xraykit --version": [sys.executable, "-m", "xraykit", "--version"],
    "xraykit --help": [sys.executable, "-m", "xraykit", "--help"],
    "xraykit train --help": [sys.executable, "-m", "xraykit", "train", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def median_seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    results = {name: median_seconds(command, args.repeats) for name, command in CASES.items()}
    base = results["python -c pass"]
    print(f"{'command':28} {'median s':>9} {'x python':>9} {'+ s':>7}")
    for name, seconds in results.items():
        print(f"{name:28} {seconds:9.3f} {seconds / base:9.2f} {seconds - base:7.3f}")


if __name__ == "__main__":
    main()
