"""Benchmark: how long the command line takes to answer `--help`, against `python -c pass` measured in the same run.

.venv/bin/python benchmarks/cli.py [--runs 15] [--out .coprocessor/bench-cli.json]   (part of `make bench`)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "coprocessor --help": [sys.executable, "-m", "coprocessor", "--help"],
    "coprocessor template --help": [sys.executable, "-m", "coprocessor", "template", "--help"],
    "coprocessor node --help": [sys.executable, "-m", "coprocessor", "node", "--help"],
}


def _median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (default 15; the median is reported)")
    parser.add_argument("--out", type=Path, default=Path(".coprocessor/bench-cli.json"), help="JSON report path")
    options = parser.parse_args()
    for command in CASES.values():  # warm the page cache: the first start of an interpreter reads its files
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    medians = {label: _median_seconds(command, options.runs) for label, command in CASES.items()}
    base = medians["python -c pass (baseline)"]
    print(f"{'command':<32} {'median':>9} {'x python -c pass':>17}")
    for label, seconds in medians.items():
        print(f"{label:<32} {seconds * 1000:>7.0f}ms {seconds / base:>16.1f}x")
    report = {"runs": options.runs, "median_seconds": medians, "ratio_to_python": {k: v / base for k, v in medians.items()}}
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report written to {options.out}")


if __name__ == "__main__":
    main()
