"""What users run on accelerators, checked in one go (`make gpu-check`), with one JSON record.

On whatever torch sees (every visible GPU; the CPU when there is none), through the project's
own code, on token data that `regmix.data.prepare` builds from generated documents (or `--tokens`):

1. proxies: 8 proxies of `proxy=regmix_1m`'s shape and batch (10 steps each) trained by the
   swarm, `run_swarm` with one worker per GPU, precision `auto` (bf16 where native): each
   proxy's tokens/s, MFU against the device's dense bf16 peak (a datasheet table of H100, H200,
   A100, L40S, L4...; on CPU a matmul peak measured here with bench_train's `matmul_peak`) and
   the peak memory;
2. large: `large=demo` for 50 steps under `torchrun --nproc_per_node <gpus>` (NCCL; on CPU two
   gloo ranks), stopped right after its checkpoint at step 25 as a preempted job is, then rerun
   as users run it, `torchrun -m stages.train`, which must resume from that checkpoint, reach
   the last step with a finite loss and export the model (`export_hf`);
3. evaluate: that export scored on the test split by `evaluate_runs`, as the evaluate stage does;
4. packing: the same 8 proxies with 2 workers per device, against part 1's one per device.

No network. On one GPU it is meant to take 3 to 5 minutes (compiling the proxies is much of
it) and must stay under 8. Without a GPU (or with `--tiny`) the same run uses tiny shapes and
budgets, says so, and takes about 30 s on 2 cores: that form checks the code paths, not a
device's speed. Everything trained goes to a temporary folder, removed at the end. The record
is written to `--out/<device>-<time>.json` and printed as the last line:

    device ("cpu" without a GPU), gpus, torch, cuda (null on CPU), tiny, precision (the proxies'),
    peak_tflops, peak_source (null: no known peak, no MFU), wall_s (the whole check)
    data:     tokens (the given folder, or "generated"), domains, wall_s
    proxies:  preset, model, steps, tokens_per_proxy, flops_per_token, trained, workers,
              tokens_per_s (each proxy's tokens over its seconds: build, compile, training and
              scoring), tokens_per_s_median, swarm_tokens_per_s (all 8 over the swarm's wall
              time), mfu (of the median proxy), peak_memory_mib, wall_s
    large:    preset, model, backend (nccl, gloo; null for one process), world_size, steps,
              checkpoint_step (where it stopped), resumed_from, final_step, final_train_loss,
              valid_loss_nats (per domain), peak_memory_mib, wall_s
    evaluate: target ("mean"), target_loss_nats, test_loss_nats and test_bpb (per scored set), wall_s
    packing:  trained, workers, tokens_per_s, tokens_per_s_median, swarm_tokens_per_s (as in
              proxies), workers_per_device, device_tokens_per_s (median x workers per device),
              one_per_device_tokens_per_s (part 1's median), speedup (of the two),
              one_per_device_swarm_tokens_per_s, wall_s

A worker's first proxy pays its start-up and compilation, so the medians are warm proxies'
(on one GPU); the swarm figures include everything. Peak memory: on GPUs the most memory in
use on any device above its use when the part began, sampled every 50 ms, every process
counted (the swarm's workers and torchrun's ranks run apart from this one), CUDA contexts and
the caching allocator's reserve included; on CPU the largest resident set of this process
(proxies) or of torchrun's ranks (large).

    python -m benchmarks.gpu_check                         # record in benchmarks/results/gpu/
    python -m benchmarks.gpu_check --tiny --out /tmp/gpu   # the quick form, on any machine
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from benchmarks.bench_train import matmul_peak
from regmix import runtime
from regmix.choose.mixture_files import read_one, run_dir, write_all
from regmix.compose import composed
from regmix.config import DataConfig, EvaluateConfig, LargeConfig, ProxyConfig, TokenizerConfig, from_dict, train_tokens
from regmix.data.prepare import prepare
from regmix.data.shards import read_meta
from regmix.files import load_params, read_json, write_json, write_yaml
from regmix.judge.evaluation import evaluate_runs
from regmix.progress import say
from regmix.tables import mixture_frame
from regmix.target import Target, slug
from regmix.train.backends import Placement
from regmix.train.checkpoints import save_checkpoint
from regmix.train.curves import METRICS_DIR
from regmix.train.large import CHECKPOINT_FILE, RUN_FILE, setup
from regmix.train.model import LLaMA
from regmix.train.proxy import default_device, resolve_config
from regmix.train.swarm import run_swarm
from regmix.train.training import resolve_precision, resolve_vocab, train_steps

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "results" / "gpu"
PROXY_PRESET, LARGE_PRESET = "regmix_1m", "demo"
PROXIES = 8
TARGET = "mean"  # what the large run's export is scored on: the mean test loss over the domains
SEED = 0
# Dense bf16 tensor-core peaks (TFLOP/s, NVIDIA datasheets), the first whose name is in the device's.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("GH200", 989.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
)
# The CPU form's shapes: every code path of the GPU run, in seconds on two cores.
TINY_MODEL = {"n_layer": 1, "n_head": 2, "d_model": 32, "d_ff": 64, "context": 32, "vocab_size": None, "loss_chunk": 64}
TINY_OPTIM = {"batch_size": 4, "micro_batch_size": None, "compile": False}
TINY_WINDOWS = {"windows_per_domain": 4, "batch_size": 4}
TINY_EVALUATE = {"windows_per_domain": 4, "batch_size": 8, "n_examples": 8}


@dataclass(frozen=True)
class Budget:
    """How long each part runs: the GPU run's, or the CPU form's."""

    proxy_steps: int
    large_steps: int  # preempted half-way, then resumed
    words: int  # words per generated document
    documents: int  # generated train documents per domain (valid: a tenth, at least 8)


GPU_BUDGET = Budget(proxy_steps=10, large_steps=50, words=600, documents=160)
TINY_BUDGET = Budget(proxy_steps=4, large_steps=6, words=60, documents=40)
CPU_RANKS = 2  # gloo ranks of the CPU form: data parallel, as on GPUs
# Proxy workers per device in the packing part: on one GPU each trains 4 of the 8 proxies.
PACK = 2


# ---------------------------------------------------------------------------- data
def build_tokens(root: Path, budget: Budget) -> Path:
    """A tokens folder built by `prepare` from generated jsonl documents: three domains, each
    of made-up words of its own, in RegMix's layout `<src>/{train,valid}/<domain>-0.jsonl`."""
    rng = np.random.default_rng(SEED)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    for domain in ("alpha", "beta", "gamma"):
        pool = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(256)]
        # At least 8 valid documents: prepare moves half of them to the test split.
        for split, n in (("train", budget.documents), ("valid", max(8, budget.documents // 10))):
            path = root / "src" / split / f"{domain}-0.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(json.dumps({"text": " ".join(rng.choice(pool, budget.words)) + "."}) + "\n" for _ in range(n))
            )
    cfg = DataConfig(source="jsonl", path=str(root / "src"), tokenizer=TokenizerConfig(vocab_size=512))
    prepare(cfg, SEED, root / "tokens")
    return root / "tokens"


# ------------------------------------------------------------------------- configs
def configs(tiny: bool, budget: Budget, ranks: int) -> tuple[dict, ProxyConfig, LargeConfig, EvaluateConfig]:
    """The composed params and the presets' proxy, large and evaluate configs, cut to `budget`
    (the large batch made divisible by the `ranks` it is split over)."""
    params = composed([f"proxy={PROXY_PRESET}", f"large={LARGE_PRESET}"], REPO / "conf")
    proxy = from_dict(ProxyConfig, params["proxy"], "proxy.")
    large = from_dict(LargeConfig, params["large"], "large.")
    evaluate = from_dict(EvaluateConfig, params["evaluate"], "evaluate.")
    if tiny:
        proxy, large = (
            replace(
                c,
                model=replace(c.model, **TINY_MODEL),
                optim=replace(c.optim, **TINY_OPTIM),
                eval=replace(c.eval, **TINY_WINDOWS),
            )
            for c in (proxy, large)
        )
        evaluate = replace(evaluate, **TINY_EVALUATE)
    proxy = replace(proxy, optim=replace(proxy.optim, steps=budget.proxy_steps, precision="auto"))
    batch = -(-large.optim.batch_size // ranks) * ranks  # e.g. 16 on 3 GPUs: 18
    large = replace(
        large,
        optim=replace(large.optim, steps=budget.large_steps, batch_size=batch),
        checkpoint_every=budget.large_steps // 2,
    )
    return params, proxy, large, evaluate


def device_peak(precision: str, threads: int) -> tuple[float | None, str | None]:
    """TFLOP/s a proxy's device can reach at `precision`, and where the figure comes from."""
    if not torch.cuda.is_available():
        torch.set_num_threads(threads)  # as one proxy worker runs
        return matmul_peak(precision) / 1e12, f"measured: {precision} 1024^3 matmuls, {threads} thread(s)"
    name = torch.cuda.get_device_properties(0).name
    peak = next((tflops for key, tflops in BF16_PEAK_TFLOPS if key in name), None)
    if precision != "bf16" or peak is None:
        return None, None  # no datasheet figure for this device and precision: no MFU
    return peak, "datasheet: dense bf16"


# -------------------------------------------------------------------------- memory
@contextlib.contextmanager
def peak_memory(out: dict[str, Any], children: bool) -> Iterator[None]:
    """`out["peak_memory_mib"]` on exit: see the module's docstring. On CPU the work ran in this
    process, or (`children`) in child processes that have ended."""
    if not torch.cuda.is_available():
        yield
        who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
        out["peak_memory_mib"] = round(resource.getrusage(who).ru_maxrss / 1024, 1)  # KiB on Linux
        return
    devices = range(torch.cuda.device_count())

    def used() -> list[int]:
        return [total - free for free, total in map(torch.cuda.mem_get_info, devices)]

    start, peak, done = used(), used(), threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[:] = map(max, peak, used())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    out["peak_memory_mib"] = round(max(p - s for p, s in zip(peak, start)) / 2**20, 1)


@contextlib.contextmanager
def part(record: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """`record[name]`: the part's figures, its wall seconds added when it ends."""
    say(f"gpu_check: {name}")
    figures = record[name] = {}
    start = time.perf_counter()
    yield figures
    figures["wall_s"] = round(time.perf_counter() - start, 2)
    say(f"gpu_check: {name}: {json.dumps(figures)}")


# ---------------------------------------------------------------------- the large run
@dataclass(frozen=True)
class LargeFiles:
    """The large run's inputs and outputs in the check's folder, laid out as stages.train takes them."""

    root: Path
    tokens: Path

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def mixture(self) -> Path:
        return self.root / "compare" / "uniform.json"

    @property
    def model(self) -> Path:
        return self.root / "large"

    @property
    def curves(self) -> Path:
        return self.root / "curves"

    def stage_args(self) -> list[str]:
        return [str(self.mixture), str(self.tokens), str(self.model), str(self.curves), "--params", str(self.params)]


def write_inputs(files: LargeFiles, params: dict, large: LargeConfig, domains: list[str]) -> None:
    """params.yaml (the composed params with the check's large run) and the uniform mixture's file."""
    write_yaml(
        files.params,
        {
            **params,
            "large": asdict(large),
            "target": TARGET,
            "eval_sets": {},
            "tasks": {},
            "sample": {**params["sample"], "max_epochs": None},
        },
    )
    write_all(files.mixture.parent, {"uniform": {d: 1 / len(domains) for d in domains}}, {"uniform": [SEED]})


def torchrun(ranks: int, files: LargeFiles, module: str, *args: str) -> None:
    # TMPDIR: torchrun's own log folders go with the check's.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(ranks),
            "-m",
            module,
            *args,
        ],
        cwd=REPO,
        check=True,
        env={**os.environ, "TMPDIR": str(files.root)},
    )


def train_until(files: LargeFiles, stop: int) -> None:
    """torchrun worker: stages.train's run of the check's mixture, stopped right after its
    checkpoint at step `stop`, as a preempted job is (its rerun must resume from there)."""
    compared = read_one(files.mixture)
    seed = compared.seeds[0]
    cfg = from_dict(LargeConfig, load_params(files.params)["large"], "large.")
    run = setup(
        compared.name,
        compared.mixture,
        cfg,
        seed,
        files.tokens,
        run_dir(files.model, seed),
        run_dir(files.curves, seed),
        runtime.positive_env("REGMIX_THREADS"),
        max_epochs=None,
    )
    train_steps(
        run.net, run.optimizer, run.sampler, run.cfg.optim, start=run.start, stop=stop, rank_batch_size=run.rank_batch
    )
    if run.ctx.main:
        save_checkpoint(run.checkpoint, run.model, run.optimizer, stop, run.fingerprint)
    run.ctx.barrier()
    if dist.is_initialized():
        dist.destroy_process_group()


# ------------------------------------------------------------------------ the parts
def proxy_rates(folder: Path) -> list[float]:
    """Each stored proxy's tokens/s: its tokens over its seconds (build, compile, training, scoring)."""
    return [r["tokens"] / r["seconds"] for r in map(read_json, sorted(folder.glob("*.json")))]


def train_proxies(
    figures: dict[str, Any], mixtures: pd.DataFrame, cfg: ProxyConfig, tokens: Path, out: Path, workers: int
) -> list[float]:
    """The swarm of `mixtures` in `workers` workers, as the proxies stage runs it; the proxies' tokens/s."""
    os.environ["REGMIX_STORE"] = str(out.with_name(f"{out.name}.store"))  # each measurement trains all of them
    _, stats = run_swarm(mixtures, cfg, tokens, out, SEED, Placement(workers=workers), max_epochs=None)
    rates = proxy_rates(out)
    figures.update(
        trained=stats["trained"],
        workers=stats["workers"],
        tokens_per_s=[round(r, 1) for r in rates],
        tokens_per_s_median=round(statistics.median(rates), 1),
        swarm_tokens_per_s=stats["tokens_per_s"],
    )
    return rates


def run_large(figures: dict[str, Any], files: LargeFiles, large: LargeConfig, ranks: int) -> None:
    """The large run under torchrun: preempted after its checkpoint half-way, then resumed by stages.train."""
    model, curves = run_dir(files.model, SEED), run_dir(files.curves, SEED)
    torchrun(
        ranks,
        files,
        "benchmarks.gpu_check",
        "--tokens",
        str(files.tokens),
        "--work",
        str(files.root),
        "--preempt-at",
        str(large.checkpoint_every),
    )
    preempted = torch.load(model / CHECKPOINT_FILE, map_location="cpu", weights_only=True)["step"]
    torchrun(ranks, files, "stages.train", *files.stage_args())
    run = read_json(model / RUN_FILE)
    last = pd.read_csv(curves / METRICS_DIR / "train" / "loss.tsv", sep="\t").iloc[-1]  # the resumed run's curve
    figures.update(
        world_size=run["world_size"],
        steps=run["steps"],
        checkpoint_step=preempted,
        resumed_from=run["resumed_from"],
        final_step=int(last["step"]),
        final_train_loss=float(last["loss"]),
        valid_loss_nats=run["valid_loss"],
    )


def check(out_dir: Path, tokens: Path | None, tiny: bool) -> None:
    """Run the four parts; write the record under `out_dir` and print it."""
    gpus = torch.cuda.device_count()
    if not gpus:
        say(
            "gpu_check: no GPU visible to torch: the CPU form, with tiny shapes (it checks the code paths, "
            "not a device's speed)"
        )
    started = time.perf_counter()
    tiny = tiny or not gpus
    budget = TINY_BUDGET if tiny else GPU_BUDGET
    devices, ranks = max(1, gpus), gpus or CPU_RANKS
    device = torch.cuda.get_device_properties(0).name if gpus else "cpu"
    params, proxy, large, evaluate = configs(tiny, budget, ranks)
    precision = resolve_precision(proxy.optim, default_device(), "proxy").precision
    peak, source = device_peak(precision, Placement.threads_per_worker)
    record: dict[str, Any] = {
        "device": device,
        "gpus": gpus,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tiny": tiny,
        "precision": precision,
        "peak_tflops": peak,
        "peak_source": source,
    }
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as tmp:
        work = Path(tmp)
        os.environ["REGMIX_CACHE"] = str(work / "cache")  # measured rates: this run's own, not the user's cache
        with part(record, "data") as figures:
            figures["tokens"] = str(tokens) if tokens else "generated"
            tokens = tokens.resolve() if tokens else build_tokens(work / "data", budget)
            domains = figures["domains"] = read_meta(tokens).domains
        resolved = resolve_config(proxy, tokens)
        weights = np.random.default_rng(SEED).dirichlet(np.ones(len(domains)), PROXIES)
        mixtures = mixture_frame(range(PROXIES), domains, weights)

        with part(record, "proxies") as figures, peak_memory(figures, children=False):
            with torch.device("meta"):  # FLOPs without allocating the weights
                flops = LLaMA(resolved.model).flops_per_token()
            figures.update(
                preset=PROXY_PRESET,
                model=asdict(resolved.model),
                steps=resolved.optim.steps,
                tokens_per_proxy=train_tokens(resolved.optim, resolved.model.context),
                flops_per_token=flops,
            )
            one = statistics.median(train_proxies(figures, mixtures, proxy, tokens, work / "proxies", devices))
            figures["mfu"] = round(flops * one / (peak * 1e12), 4) if peak else None
        torch.cuda.empty_cache()  # the proxies' reserve goes back to the large run's processes

        files = LargeFiles(work / "run", tokens)
        write_inputs(files, params, large, domains)
        with part(record, "large") as figures, peak_memory(figures, children=True):
            model = resolve_vocab(large.model, read_meta(tokens), "large.model")
            figures.update(
                preset=LARGE_PRESET, model=asdict(model), backend=None if ranks == 1 else "nccl" if gpus else "gloo"
            )
            run_large(figures, files, large, ranks)

        with part(record, "evaluate") as figures:
            scores = evaluate_runs(
                {"uniform": run_dir(files.model, SEED)}, tokens, evaluate, Target.parse(TARGET, "loss", domains), SEED
            )["uniform"]
            figures.update(
                target=TARGET,
                target_loss_nats=scores["target_loss"],
                test_loss_nats=scores["domain_loss"],
                test_bpb=scores["bpb"],
            )

        with part(record, "packing") as figures:
            packed = statistics.median(train_proxies(figures, mixtures, proxy, tokens, work / "packed", PACK * devices))
            figures.update(
                workers_per_device=PACK,
                device_tokens_per_s=round(packed * PACK, 1),
                one_per_device_tokens_per_s=round(one, 1),
                speedup=round(packed * PACK / one, 3),
                one_per_device_swarm_tokens_per_s=record["proxies"]["swarm_tokens_per_s"],
            )
    record["wall_s"] = round(time.perf_counter() - started, 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{slug(device)}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, record)
    say(f"gpu_check: record written to {path}")
    print(json.dumps(record))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT, help=f"folder of the record (default {OUT.relative_to(REPO)})")
    p.add_argument("--tokens", type=Path, help="a prepared tokens folder to train on (default: generated)")
    p.add_argument("--tiny", action="store_true", help="tiny shapes and budgets (implied without a GPU)")
    # The large run's first, preempted leg: this module as torchrun's worker.
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--preempt-at", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.preempt_at is not None:
        train_until(LargeFiles(args.work, args.tokens), args.preempt_at)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the network
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    check(args.out, args.tokens, args.tiny)


if __name__ == "__main__":
    main()
