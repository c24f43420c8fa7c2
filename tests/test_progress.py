"""Progress bars that read well in a log, and the plan printed before long work."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from conftest import REPO
from tqdm import tqdm

from regmix.errors import UserError
from regmix.progress import LogBar, Plan, Rate, duration, progress, remember_rate, remembered_rate

HINT = "use a GPU"


class Clock:
    """A stand-in for a bar's clock, moved by hand from the bar's start."""

    def __init__(self, bar: tqdm):
        self.now = bar.last_print_t
        bar._time = self

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_a_few_lines_not_one_per_update(tmp_path):
    """stderr redirected to a file (not a terminal): 200k fast updates give a first and a last line."""
    log = tmp_path / "stderr.log"
    code = (
        "from regmix.progress import progress\n"
        "for _ in progress(range(200_000), desc='steps', unit='step'):\n    pass\n"
    )
    with log.open("w") as stderr:
        subprocess.run([sys.executable, "-c", code], cwd=REPO, stderr=stderr, check=True, timeout=60)
    text = log.read_text()
    lines = text.splitlines()
    assert "\r" not in text
    assert 2 <= len(lines) <= 4, lines
    assert lines[0].startswith("steps:   0% 0/200000")
    assert lines[-1].startswith("steps: 100% 200000/200000")


def test_a_terminal_gets_the_usual_bar():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = progress(total=3, file=Terminal())
    assert type(bar) is tqdm
    bar.close()
    log_bar = progress(total=3, file=io.StringIO())
    assert isinstance(log_bar, LogBar)
    log_bar.close()


def test_lines_at_each_tenth_at_most_one_a_second():
    out = io.StringIO()
    bar = progress(total=100, desc="work", file=out)
    clock = Clock(bar)
    for _ in range(100):
        clock.now += 0.5  # a tenth every 5 s: one line each
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["0/100"] + [f"{n}/100" for n in range(10, 101, 10)]

    out = io.StringIO()
    bar = progress(total=1000, desc="fast", file=out)
    clock = Clock(bar)
    for _ in range(1000):
        clock.now += 0.001  # the whole run in a second: the first line and the last
        bar.update(1)
    bar.close()
    assert len(out.getvalue().splitlines()) == 2


def test_without_a_total_a_line_every_every_s():
    out = io.StringIO()
    bar = progress(desc="docs", unit=" docs", file=out, every_s=30)
    clock = Clock(bar)
    for _ in range(120):
        clock.now += 1.0
        bar.update(10)
    bar.close()
    counts = [line.split()[1] for line in out.getvalue().splitlines()]
    assert counts == ["0", "300", "600", "900", "1200"]  # the first, every 30 s, and the last (already shown)


def test_plan_line_and_eta():
    plan = Plan(
        "proxies (seed 0)",
        "64 to train (0 stored) x 131k tokens",
        64 * 131_072,
        "cpu",
        Rate(30_000, "2 worker(s) x 15.0k, timed warm-up"),
        HINT,
    )
    # 64 x 131,072 = 8,388,608 tokens; / 30,000 tokens/s = 279.6 s
    assert plan.line() == (
        "proxies (seed 0): 64 to train (0 stored) x 131k tokens = 8.39M tokens on cpu at "
        "30.0k tokens/s (2 worker(s) x 15.0k, timed warm-up): ETA 4m40s"
    )
    assert plan.warnings() == []
    unknown = Plan("proxies (seed 0)", "8 to train (0 stored) x 1.05M tokens", 8 * 2**20, "Slurm (slurm)", None, HINT)
    assert unknown.line() == (
        "proxies (seed 0): 8 to train (0 stored) x 1.05M tokens = 8.39M tokens on "
        "Slurm (slurm); tokens/s and ETA once the first results are in"
    )


def test_a_plan_over_an_hour_on_cpu_stops_unless_confirmed(monkeypatch):
    # 36 proxies x 1e7 tokens at 100k tokens/s: 3,600 s is an hour; one more proxy is over it
    hour = Plan("proxies (seed 0)", "36 x 10M", 36e7, "cpu", Rate(1e5, "last run"), HINT)
    hour.announce()  # an hour: runs
    over = Plan("proxies (seed 0)", "37 x 10M", 37e7, "cpu", Rate(1e5, "last run"), HINT)
    with pytest.raises(
        UserError,
        match=r"proxies \(seed 0\): ETA 1h01m on CPU, over an hour: nothing trained\. Set "
        r"REGMIX_YES=1 to run it anyway, or use a GPU",
    ):
        over.announce()
    Plan("proxies (seed 0)", "37 x 10M", 37e7, "NVIDIA H200", Rate(1e5, "last run"), HINT).announce()  # its hardware
    monkeypatch.setenv("REGMIX_YES", "1")
    over.announce()


def test_a_plan_over_a_day_on_cpu_warns(capsys, monkeypatch):
    # 512 proxies x 1e9 tokens at 100k tokens/s: 5.12e6 s = 59.3 days
    monkeypatch.setenv("REGMIX_YES", "1")  # confirmed: it runs, with its warning
    slow = Plan("proxies (seed 0)", "512 to train (0 stored) x 1.00G tokens", 512e9, "cpu", Rate(1e5, "last run"), HINT)
    assert slow.warnings() == ["proxies (seed 0): ETA 59.3 days on CPU: use a GPU"]
    slow.announce("another warning")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        slow.line(),
        "warning: proxies (seed 0): ETA 59.3 days on CPU: use a GPU",
        "warning: another warning",
    ]
    on_gpu = Plan("proxies (seed 0)", "512 x 1.00G tokens", 512e9, "NVIDIA H200", Rate(1e5, "last run"), HINT)
    assert on_gpu.warnings() == []  # slow, but the hardware is what the plan is for


def test_durations():
    assert [duration(s) for s in (42, 279.6, 31 * 3600 + 12 * 60, 3.2 * 86400)] == [
        "42s",
        "4m40s",
        "31h12m",
        "3.2 days",
    ]


def test_rates_are_remembered_per_key(tmp_path, monkeypatch):
    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path))
    assert remembered_rate("a") is None
    remember_rate("a", 1234.56, what="proxies")
    remember_rate("b", 10.0, what="large")
    assert remembered_rate("a") == 1234.6 and remembered_rate("b") == 10.0
    (tmp_path / "rates.json").write_text("not json")
    assert remembered_rate("a") is None  # a broken cache costs a warm-up, never the run


def test_tests_never_write_to_the_users_cache():
    """conftest points REGMIX_CACHE at a temporary folder for the whole session."""
    from pathlib import Path

    from regmix import runtime

    assert not runtime.cache_root().is_relative_to(Path.home() / ".cache")
