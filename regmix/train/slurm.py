"""Slurm job arrays through submitit, for work whose every item leaves a file when it is done.

`run_array` submits the items as one job array (one task per chunk of items), yields each item
as its output appears, and ends with a UserError naming the failed tasks and their logs when
the array finishes with items still missing. Results never travel back through submitit: each
task writes its own outputs as it goes, so what a preempted, killed or timed-out task finished
is kept, and a rerun submits only what is missing. When Slurm signals a preemption or a coming
timeout, submitit requeues the task (after at most 3 timeouts it gives up); the task function
must therefore skip what is already done.

Where and how the array runs comes from `backends.Placement` (the REGMIX_SLURM_* variables).
submitit is an optional dependency (`pip install -e ".[slurm]"`), imported only to submit.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar

from regmix.errors import UserError
from regmix.progress import say

if TYPE_CHECKING:
    from submitit import Job

    from regmix.train.backends import Placement

Item = TypeVar("Item")

POLL_S = 1.0  # how often the outputs folder (and the tasks' states) are checked
SACCT_EVERY_S = 60.0  # at least this often, ask Slurm about tasks that died without a result file
GRACE_POLLS = 2  # scans of the outputs after the last task ended (shared filesystems lag)
SHOW_FAILED = 10  # failed tasks listed in the final error (each is also printed as it fails)


class ArrayTask:
    """One array task: `fn(chunk)`. submitit calls `checkpoint` on a timeout or preemption
    signal and requeues the task with the same chunk; `fn` skips the items already done."""

    def __init__(self, fn: Callable[[list], Any]):
        self.fn = fn

    def __call__(self, chunk: list) -> Any:
        return self.fn(chunk)

    def checkpoint(self, chunk: list) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, chunk)


def chunks_of(items: Sequence[Item], size: int) -> list[list[Item]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def executor(placement: Placement, name: str) -> Any:
    """A submitit AutoExecutor set up from `placement`: one node, one task, its CPUs and GPUs."""
    try:
        import submitit
    except ImportError:
        raise UserError("REGMIX_BACKEND=slurm needs submitit: pip install -e '.[slurm]'") from None
    if placement.slurm_cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError(
            "REGMIX_BACKEND=slurm submits with sbatch, which is not on PATH: run on a Slurm "
            "login node (REGMIX_SLURM_CLUSTER=local runs the array on this machine, for testing)"
        )
    ex = submitit.AutoExecutor(folder=Path(placement.slurm_logs).absolute(), cluster=placement.slurm_cluster)
    ex.update_parameters(
        name=name,
        nodes=1,
        tasks_per_node=1,
        timeout_min=placement.slurm_minutes,
        cpus_per_task=placement.slurm_cpus or placement.threads_per_worker,
        gpus_per_node=placement.slurm_gpus,
        slurm_partition=placement.slurm_partition,
        slurm_array_parallelism=placement.slurm_parallelism,
    )  # None: left unset
    return ex


def submit(fn: Callable[[list], Any], chunks: list[list], placement: Placement, name: str) -> list[Job]:
    """Submit one array task per chunk; their submitit jobs, in the order of `chunks`."""
    return executor(placement, name).map_array(ArrayTask(fn), chunks)


def run_array(
    fn: Callable[[list], Any], items: Sequence[Item], placement: Placement, done: Callable[[Item], bool], name: str
) -> Iterator[Item]:
    """Run `fn` over chunks of `items` as a job array; yield each item once `done(item)` holds.

    Raises a UserError if items are still not done when every task has ended. If the caller
    stops early (an error, Ctrl-C), the tasks still queued or running are cancelled.
    """
    if not items:
        return
    chunks = chunks_of(items, placement.slurm_chunk)
    jobs = submit(fn, chunks, placement, name)
    say(
        f"{name}: {len(items)} submitted as {len(jobs)} array task(s) ({placement.slurm_cluster}, "
        f"first job {jobs[0].job_id}); logs in {jobs[0].paths.folder}"
    )
    try:
        failed = yield from wait(jobs, chunks, done)
    except BaseException:
        cancel(jobs)
        raise
    if failed:
        missing = sum(not done(item) for chunk in chunks for item in chunk)
        more = [f"... and {len(failed) - SHOW_FAILED} more"] if len(failed) > SHOW_FAILED else []
        raise UserError(
            f"{name}: {missing} of {len(items)} still missing after the job array ended; "
            f"{len(failed)} failed task(s):\n  "
            + "\n  ".join(failed[:SHOW_FAILED] + more)
            + "\nFix the cause and rerun: finished work is kept and only what is missing is submitted."
        )


def wait(jobs: list[Job], chunks: list[list[Item]], done: Callable[[Item], bool]) -> Iterator[Item]:
    """Yield items as they become done until all are or every task has ended; return a line
    (task, state, log) for each task that ended with items of its chunk missing."""
    waiting = [(t, item) for t, chunk in enumerate(chunks) for item in chunk]
    running = set(range(len(jobs)))
    failed: list[str] = []
    last_sacct = time.monotonic()
    grace = GRACE_POLLS
    while waiting and grace:
        if running and time.monotonic() - last_sacct > SACCT_EVERY_S:
            jobs[min(running)].get_info(mode="force")  # one sacct call refreshes every task's state
            last_sacct = time.monotonic()
        ended = sorted(t for t in running if jobs[t].done())  # before the scan: a task writes, then ends
        still = []
        for t, item in waiting:
            if done(item):
                yield item
            else:
                still.append((t, item))
        waiting = still
        for t in ended:
            running.discard(t)
            if any(t == w for w, _ in waiting):
                failed.append(describe(jobs[t]))
                say(f"failed: {failed[-1]}")
        if not running:
            grace -= 1
        if waiting and grace:
            time.sleep(POLL_S)
    return failed if waiting else []


def describe(job: Job) -> str:
    """`<task id> (<state>): <stderr log>`, and the log's last line (usually the error)."""
    log = Path(job.paths.stderr)
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return f"{job.job_id} ({job.state}): {log}" + (f"\n    {lines[-1]}" if lines else "")


def cancel(jobs: list[Job]) -> None:
    """Cancel the tasks still queued or running."""
    unfinished = [job for job in jobs if not job.done()]
    for job in unfinished:
        job.cancel(check=False)
    if unfinished:
        say(f"cancelled {len(unfinished)} unfinished array task(s)")
