"""Progress that reads well on a terminal and in a log, and the cost of long work before it starts.

`progress(...)` is how the library makes every progress bar. On a terminal it is a plain tqdm
bar. When the stream is not a terminal (a log file, `dvc queue logs`, CI) a bar redrawn with
carriage returns turns into one unreadable line, so it prints plain lines instead: the first,
one per tenth of the total (at most one a second), one at least every `every_s` seconds, and
the last, each with the count, elapsed time, ETA, rate and postfix of the bar.

Before long work, `Plan` says what will run (tokens, device, tokens/s and where that number
comes from, ETA) and warns, one line each on stderr, when the ETA is unreasonable for the
hardware. Rates come from the last run of the same shape on this machine (`remembered_rate`,
kept in $REGMIX_CACHE/rates.json by `remember_rate`) or, failing that, a short timed warm-up
(`warmup_rate`) that leaves the model untouched.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, TextIO

from tqdm import tqdm

from regmix import runtime
from regmix.errors import UserError
from regmix.files import write_json

if TYPE_CHECKING:  # torch is imported where a rate is measured: stages that only show bars never load it
    import torch

LOG_EVERY_S = 60.0  # a plain line at least this often while a bar is running in a log
LOG_GAP_S = 1.0  # ...and lines for each tenth of the total at most this often
RATES_FILE = "rates.json"  # under runtime.cache_root(): measured tokens/s, per run shape and machine
SLOW_ON_CPU_S = 24 * 3600  # a CPU plan longer than this gets a warning
CONFIRM_ON_CPU_S = 3600  # ...and one longer than this stops before its work unless REGMIX_YES=1
# FLOPs of one timed warm-up pass: well under a second on any device of its kind.
WARMUP_FLOPS = {"cuda": 2e12, "cpu": 1e10}
WARMUP_PASSES = 2  # timed forward + backward passes, after one untimed


# --------------------------------------------------------------------------- bars
def progress(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    file: TextIO | None = None,
    every_s: float = LOG_EVERY_S,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on a terminal; on any other stream (`file`, default stderr) a `LogBar`."""
    stream = file if file is not None else sys.stderr
    if is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=file, **kwargs)
    return LogBar(iterable, total=total, desc=desc, unit=unit, file=file, every_s=every_s, **kwargs)


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogBar(tqdm):
    """tqdm for logs: plain lines, never carriage returns (see the module's docstring)."""

    def __init__(self, *args: Any, every_s: float = LOG_EVERY_S, **kwargs: Any):
        self.every_s = every_s
        self._line_t: float | None = None  # when the last line was written
        self._line_n: float | None = None  # and at what count
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is None and self._due(self._time()):  # msg: tqdm clearing its line, nothing to log
            self._write_line()
        return True

    def _due(self, now: float) -> bool:
        if self._line_t is None:
            return True
        since = now - self._line_t
        if since >= self.every_s:
            return True
        tenth = (lambda n: int(10 * n / self.total)) if self.total else (lambda n: 0)
        return since >= LOG_GAP_S and tenth(self.n) > tenth(self._line_n)

    def _write_line(self) -> None:
        self.fp.write(self.format_meter(**{**self.format_dict, "ncols": 0}) + "\n")
        self.fp.flush()
        self._line_t, self._line_n = self._time(), self.n

    def clear(self, nolock: bool = False) -> None:
        pass  # nothing on a line to clear

    def moveto(self, n: int) -> None:
        pass  # nested bars print their own lines

    def close(self) -> None:
        if self.disable:
            return
        if self._line_n != self.n:  # the final count, at the overall rate (as tqdm's close does)
            self._ema_dt = lambda: None
            self._write_line()
        self.disable = True
        self._decr_instances(self)


# ------------------------------------------------------------------------- lines
def say(line: str) -> None:
    """One line on stderr, around any running bar."""
    tqdm.write(line, file=sys.stderr)


def warn(line: str) -> None:
    say(f"warning: {line}")


def amount(n: float) -> str:
    """131072 -> '131k', 8388608 -> '8.39M', 0.001 -> '0.001'."""
    return f"{n:.3g}" if abs(n) < 1 else tqdm.format_sizeof(n, divisor=1000)


def duration(seconds: float) -> str:
    """42s, 4m40s, 31h12m, 3.2 days."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 72 * 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{seconds / 86400:.1f} days"


# ------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class Rate:
    """Training tokens/s of a whole run, and where the number comes from."""

    tokens_per_s: float
    source: str  # e.g. "2 workers, timed warm-up"


@dataclass(frozen=True)
class Plan:
    """What a long run will do, and how long it will take on `device`."""

    what: str  # "proxies (seed 0)", "train regmix (seed 0)"
    work: str  # "64 proxies x 131k tokens"
    tokens: float  # tokens to train
    device: str  # "cpu", a GPU's name, or where else the work runs
    rate: Rate | None  # None: not known before the work starts
    hint: str  # what to change when the ETA is unreasonable

    @property
    def eta_s(self) -> float | None:
        return self.tokens / self.rate.tokens_per_s if self.rate else None

    def line(self) -> str:
        head = f"{self.what}: {self.work} = {amount(self.tokens)} tokens on {self.device}"
        if self.rate is None:
            return f"{head}; tokens/s and ETA once the first results are in"
        return f"{head} at {amount(self.rate.tokens_per_s)} tokens/s ({self.rate.source}): ETA {duration(self.eta_s)}"

    def warnings(self) -> list[str]:
        if self.device == "cpu" and self.eta_s is not None and self.eta_s > SLOW_ON_CPU_S:
            return [f"{self.what}: ETA {duration(self.eta_s)} on CPU: {self.hint}"]
        return []

    @property
    def needs_confirmation(self) -> bool:
        """A CPU plan over an hour: `announce` stops it unless the user confirmed (REGMIX_YES=1)."""
        return self.device == "cpu" and self.eta_s is not None and self.eta_s > CONFIRM_ON_CPU_S

    def announce(self, *more_warnings: str) -> None:
        """The plan's line, then its warnings and `more_warnings`, one line each on stderr. A CPU
        plan over an hour stops here, before its work, unless the user confirmed it (REGMIX_YES=1):
        a preset sized for GPUs (`proxy=regmix_1m`) run on a laptop by mistake costs nothing."""
        say(self.line())
        for line in [*self.warnings(), *more_warnings]:
            warn(line)
        if self.needs_confirmation and not confirmed():
            raise UserError(
                f"{self.what}: ETA {duration(self.eta_s)} on CPU, over an hour: nothing trained. Set "
                f"REGMIX_YES=1 to run it anyway, or {self.hint}"
            )


def confirmed() -> bool:
    """REGMIX_YES=1: the user accepts long plans."""
    return os.environ.get("REGMIX_YES", "") not in ("", "0")


def device_name(device: torch.device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


# ------------------------------------------------------------------------- rates
def remembered_rate(key: str) -> float | None:
    """Tokens/s the last run with `key` measured on this machine, if any."""
    try:
        entry = json.loads((runtime.cache_root() / RATES_FILE).read_text()).get(key)
    except (OSError, ValueError):
        return None
    return float(entry["tokens_per_s"]) if isinstance(entry, dict) and entry.get("tokens_per_s") else None


def remember_rate(key: str, tokens_per_s: float, what: str) -> None:
    """Keep a run's measured tokens/s for the next plan of the same shape on this machine."""
    path = runtime.cache_root() / RATES_FILE
    try:
        rates = json.loads(path.read_text())
    except (OSError, ValueError):
        rates = {}
    rates[key] = {"tokens_per_s": round(tokens_per_s, 1), "what": what, "measured": datetime.date.today().isoformat()}
    try:
        write_json(path, rates)
    except OSError:  # a read-only cache only costs the next plan a warm-up
        pass


def warmup_rate(
    model: Any, sampler: Any, rows: int, autocast: Callable[[], ContextManager] = contextlib.nullcontext
) -> float:
    """Tokens/s of forward + backward passes of `model` (a regmix LLaMA) on the first batch of
    `sampler` (a MixtureSampler), at most `rows` sequences and `WARMUP_FLOPS` a pass (else the
    start of one sequence), under `autocast()`, without an optimiser step: one untimed pass, then
    `WARMUP_PASSES` timed ones. The gradients are dropped afterwards and nothing else changes
    (the sampler draws by step, statelessly), so the model trains exactly as it would have."""
    device = next(model.parameters()).device
    x, y = sampler.batch(0, rows)
    tokens = WARMUP_FLOPS.get(device.type, WARMUP_FLOPS["cpu"]) / model.flops_per_token()
    rows, length = int(min(rows, max(1, tokens // x.shape[1]))), int(min(x.shape[1], max(8, tokens)))
    x, y = x[:rows, :length].to(device), y[:rows, :length].to(device)
    was_training = model.training
    model.train()
    seconds = 0.0
    for i in range(WARMUP_PASSES + 1):
        sync(device)
        start = time.perf_counter()
        with autocast():
            loss = model(x, y)
        loss.backward()
        sync(device)
        seconds += (time.perf_counter() - start) if i else 0.0
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return WARMUP_PASSES * x.numel() / max(seconds, 1e-9)


def sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
