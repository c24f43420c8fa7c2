"""Where a run's time goes: each DVC stage's seconds, read from DVC's own lines (regmix.timings)."""

from __future__ import annotations

import sys

import pandas as pd

from regmix.timings import run, stage_seconds, table

LINES = [
    (10.0, "Running stage 'prepare':\n"),
    (10.1, "> python -m stages.prepare\n"),
    (25.0, "Stage 'sample' didn't change, skipping\n"),
    (25.5, "Running stage 'train@regmix':\n"),
    (90.0, "Updating lock file 'dvc.lock'\n"),
]


def test_each_stage_runs_from_its_line_to_the_next_stages():
    rows = stage_seconds(LINES, end=100.0)
    assert rows == [
        {"stage": "prepare", "status": "ran", "seconds": 15.0},
        {"stage": "sample", "status": "skipped", "seconds": 0.0},
        {"stage": "train@regmix", "status": "ran", "seconds": 74.5},
    ]
    frame = table(rows, total=101.0, setup=120.0)
    assert list(frame["stage"])[-2:] == ["setup (make setup, once per machine)", "total (this command)"]
    assert list(table(rows, 101.0, None)["stage"])[-1] == "total (this command)"


def test_the_command_runs_and_its_table_is_written(tmp_path, capsys):
    script = "print(\"Running stage 'a':\"); print('work'); print(\"Stage 'b' didn't change, skipping\")"
    code = run([sys.executable, "-c", script], tmp_path / "seconds.csv", tmp_path / "no_setup")
    assert code == 0 and "work" in capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "seconds.csv")
    assert list(frame["stage"]) == ["a", "b", "total (this command)"] and list(frame["status"])[:2] == [
        "ran",
        "skipped",
    ]
    assert run([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "seconds.csv", tmp_path / "none") == 3
    noop = "print(\"Stage 'a' didn't change, skipping\")"  # `make demo` again after a finished run
    assert run([sys.executable, "-c", noop], tmp_path / "seconds.csv", tmp_path / "none") == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "seconds.csv"), frame)  # the measured run's seconds kept
