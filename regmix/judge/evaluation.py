"""Scoring the trained large models on the test split (never read by selection): every set's
loss and bits per byte, each task's gold likelihood and accuracy (regmix.train.scores), the target,
the built-in downstream tasks (regmix.judge.built_in_tasks) and lm-eval; each run's scores kept
under the key of what they depend on, so a run scored before is read back.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import torch

from regmix.code import code_digest
from regmix.config import PRECISIONS, EvaluateConfig
from regmix.data.shards import data_signature, read_meta, task_path
from regmix.errors import UserError
from regmix.files import file_digest, read_json, write_json
from regmix.judge.built_in_tasks import TaskSet, build_tasks, downstream
from regmix.progress import progress, say
from regmix.target import Target
from regmix.train import store as machine_store
from regmix.train.hf_export import load_hf
from regmix.train.large import HF_DIR
from regmix.train.scores import ScoringData, score_model, scoring_data
from regmix.train.training import autocast, config_hash, native_bf16

SCORES_KIND = "scores"  # in the machine store


def run_lm_eval(
    model_dir: str | Path, tasks: list[str], include_path: str | None, batch_size: int, seed: int
) -> dict[str, dict[str, float]]:
    """lm-eval-harness on an exported model (`--model hf`): numeric metrics per task."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise UserError(f"evaluate.lm_eval_include_path: {include_path} is not a folder")
    manager = TaskManager(include_path=include_path)
    try:
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": str(model_dir), "dtype": "float32"},
            tasks=tasks,
            task_manager=manager,
            batch_size=batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu",
            log_samples=False,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    except (KeyError, ValueError) as e:  # unknown task names surface as these
        raise UserError(f"evaluate.lm_eval_tasks: {e}") from None
    return {
        task: {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for task, metrics in results["results"].items()
    }


def score_key(model_dir: Path, tokens_dir: str | Path, cfg: EvaluateConfig, seed: int, device: torch.device) -> str:
    """What a run's scores depend on: the model's files, the test data, tasks and tokenizer, the
    evaluate settings, the seed (the tasks' examples), the device and the scoring code."""
    model = {str(f.relative_to(model_dir)): file_digest(f) for f in sorted(model_dir.rglob("*")) if f.is_file()}
    meta = read_meta(tokens_dir)
    tasks = {t: file_digest(task_path(tokens_dir, t, "test")) for t in meta.tasks}
    return config_hash(
        model=model,
        data=data_signature(tokens_dir, meta.scored, "test"),
        tasks=tasks,
        cfg=cfg,
        seed=seed,
        device=device.type,
        precision=scoring_precision(cfg, device),
        torch=torch.__version__,
        lm_eval=_version("lm_eval") if cfg.lm_eval_tasks else None,
        code=code_digest(__name__),
    )


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def score_run(
    run_dir: Path,
    tokens_dir: str | Path,
    cfg: EvaluateConfig,
    seed: int,
    device: torch.device,
    inputs: dict[int, tuple[ScoringData, TaskSet]],
) -> dict[str, Any]:
    """One run's test scores (`inputs`: scoring data and built-in tasks per context, built once
    and shared by the runs): `scores` (regmix.train.scores' flat record), `domain_loss` and `bpb` per
    set, and `downstream` accuracies."""
    model = load_hf(run_dir / HF_DIR).to(device)  # one at a time: 1B models are 4 GB each
    context = model.cfg.context
    if context not in inputs:
        inputs[context] = (
            scoring_data(str(tokens_dir), "test", context, cfg.windows_per_domain),
            build_tasks(tokens_dir, cfg, context, seed),
        )
    data, tasks = inputs[context]
    precision = scoring_precision(cfg, device)
    flat = score_model(model, data, cfg.batch_size, precision)
    with autocast(precision, device):
        built_in = downstream(model, tasks, cfg.batch_size)
    scores = {
        "scores": flat,
        "domain_loss": {s: flat[f"loss.{s}"] for s in data.windows},
        "bpb": {s: flat[f"bpb.{s}"] for s in data.windows},
        "downstream": built_in,
    }
    for name in data.tasks:
        scores["downstream"][f"task:{name}"] = {
            "bpb": flat[f"task.{name}"],
            "accuracy": flat[f"acc.{name}"],
            "examples": len(data.tasks[name]),
        }
    if cfg.lm_eval_tasks:
        scores["downstream"]["lm_eval"] = run_lm_eval(
            run_dir / HF_DIR, cfg.lm_eval_tasks, cfg.lm_eval_include_path, cfg.batch_size, seed
        )
    return scores


def scoring_precision(cfg: EvaluateConfig, device: torch.device) -> str:
    """`evaluate.precision` made concrete for `device` (`auto`: bf16 where native, else fp32)."""
    if cfg.precision not in PRECISIONS:
        raise UserError(f"evaluate.precision: {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}")
    return cfg.precision if cfg.precision != "auto" else ("bf16" if native_bf16(device) else "fp32")


def evaluate_runs(
    run_dirs: Mapping[str, Path],
    tokens_dir: str | Path,
    cfg: EvaluateConfig,
    target: Target,
    seed: int,
    store: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Score every trained run (data/large/<name>/hf/) on the same windows and tasks.

    With a `store`, each run's scores are kept there (and in the machine store, regmix.train.store) under
    its `score_key` and a run scored before is read back, not scored again: a change to the report,
    the target or the compared mixtures costs no evaluation. Returns {name: {"target_loss", "domain_loss", "downstream"}}.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    keys = {n: score_key(Path(d) / HF_DIR, tokens_dir, cfg, seed, device) for n, d in run_dirs.items()} if store else {}
    stored = {
        n: read_json(Path(store) / f"{k}.json")
        for n, k in keys.items()
        if machine_store.restore(Path(store) / f"{k}.json", SCORES_KIND)
    }
    todo = [n for n in run_dirs if n not in stored]
    if stored:
        say(f"evaluate: {len(stored)} of {len(run_dirs)} runs scored before (in {store}), {len(todo)} to score")
    inputs: dict[int, tuple[ScoringData, TaskSet]] = {}
    scores = dict(stored)
    for name in progress(todo, total=len(todo), desc="evaluate", unit="run") if todo else []:
        scores[name] = score_run(Path(run_dirs[name]), tokens_dir, cfg, seed, device, inputs)
        if store:
            write_json(Path(store) / f"{keys[name]}.json", scores[name])
            machine_store.keep(Path(store) / f"{keys[name]}.json", SCORES_KIND)
    # the rule the regression was fitted to
    targets = target.by_name({n: s["scores"] for n, s in scores.items()}, "the large runs' test scores")
    return {n: {"target_loss": targets[n], **scores[n]} for n in run_dirs}
