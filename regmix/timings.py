"""Where a run's time goes: `python -m regmix.timings dvc repro [args...]` runs the command and
records each DVC stage's wall seconds (a `train@<mixture>` item is a stage of its own).

The stages' own output passes through as it comes (progress bars on stderr untouched); DVC's
"Running stage" and "didn't change, skipping" lines mark where each stage starts and ends. The
table goes to results/stage_seconds.csv (stage, status, seconds) with the total and, when `make
setup` recorded it on this machine, the set-up's seconds (.venv/.setup_seconds). `make demo`
runs the pipeline this way; a rerun in which no stage ran leaves the table as it was. The command's
exit code is this one's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from regmix.tables import write_csv

TABLE = Path("results/stage_seconds.csv")
SETUP_SECONDS = Path(".venv/.setup_seconds")
RUNNING = re.compile(r"Running stage '([^']+)'")
SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")


def stage_seconds(lines: Iterable[tuple[float, str]], end: float) -> list[dict]:
    """Rows (stage, status, seconds) from DVC's output lines, each with the time it was read: a
    stage runs from its "Running stage" line to the next stage's line (or `end`)."""
    rows: list[dict] = []
    current: Optional[dict] = None
    for at, line in lines:
        ran, skipped = RUNNING.search(line), SKIPPED.search(line)
        if not (ran or skipped):
            continue
        if current is not None:
            current["seconds"] = round(at - current.pop("start"), 1)
            current = None
        if ran:
            current = {"stage": ran.group(1), "status": "ran", "start": at}
            rows.append(current)
        else:
            rows.append({"stage": skipped.group(1), "status": "skipped", "seconds": 0.0})
    if current is not None:
        current["seconds"] = round(end - current.pop("start"), 1)
    return rows


def table(rows: list[dict], total: float, setup: Optional[float]) -> pd.DataFrame:
    """The rows, then `total` (the command's wall seconds) and the set-up's when known."""
    extra = [{"stage": "total (this command)", "status": "", "seconds": round(total, 1)}]
    if setup is not None:
        extra.insert(0, {"stage": "setup (make setup, once per machine)", "status": "ran", "seconds": round(setup, 1)})
    return pd.DataFrame([*rows, *extra], columns=["stage", "status", "seconds"])


def run(command: list[str], out: Path = TABLE, setup_file: Path = SETUP_SECONDS) -> int:
    """Run `command`, echo its stdout, write the stage table to `out`; returns its exit code."""
    start = time.perf_counter()
    seen: list[tuple[float, str]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the stages' lines as they print them, not at exit
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            seen.append((time.perf_counter(), line))
    end = time.perf_counter()
    rows = stage_seconds(seen, end)
    if not any(r["status"] == "ran" for r in rows):  # a no-op rerun keeps the last run's seconds
        print(f"\nno stage ran: {out} keeps the seconds of the last run that did")
        return proc.returncode
    setup = float(setup_file.read_text().strip()) if setup_file.exists() else None
    frame = table(rows, end - start, setup)
    write_csv(out, frame)
    print(f"\nseconds per stage -> {out}\n" + frame.to_string(index=False))
    return proc.returncode


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m regmix.timings COMMAND [ARGS...]  (e.g. dvc repro)")
    sys.exit(run(sys.argv[1:]))
