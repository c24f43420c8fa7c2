"""benchmarks/gpu_check: its CPU form end to end, as `make gpu-check` runs it on a machine without a GPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from conftest import REPO

PARTS = ("data", "proxies", "large", "evaluate", "packing")


def test_cpu_form_checks_every_gpu_path(tmp_path):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    # No GPU visible, on any machine: the CPU form. Its own temporary folder: what it trains goes there.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp)}
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "no GPU visible to torch: the CPU form, with tiny shapes" in run.stderr
    [path] = out.glob("*.json")
    record = json.loads(path.read_text())
    assert json.loads(run.stdout.strip().splitlines()[-1]) == record
    assert not list(tmp.glob("gpu_check.*"))  # the trained artefacts are gone

    assert record["device"] == "cpu" and record["tiny"] is True and record["gpus"] == 0 and record["cuda"] is None
    assert record["peak_tflops"] > 0 and record["peak_source"].startswith("measured")

    proxies = record["proxies"]
    assert proxies["preset"] == "regmix_1m" and proxies["trained"] == 8 and proxies["workers"] == 1
    assert len(proxies["tokens_per_s"]) == 8 and min(proxies["tokens_per_s"]) > 0
    assert proxies["tokens_per_s_median"] > 0 and proxies["swarm_tokens_per_s"] > 0
    assert 0 < proxies["mfu"] < 1 and proxies["peak_memory_mib"] > 0

    large = record["large"]
    assert large["backend"] == "gloo" and large["world_size"] == 2
    # Stopped after its checkpoint, resumed from it, and trained to the last step.
    assert 0 < large["checkpoint_step"] == large["resumed_from"] < large["final_step"] == large["steps"]
    assert math.isfinite(large["final_train_loss"]) and large["peak_memory_mib"] > 0
    assert all(math.isfinite(loss) for loss in large["valid_loss_nats"].values())

    scored = record["evaluate"]
    assert set(scored["test_loss_nats"]) == set(record["data"]["domains"])
    assert all(math.isfinite(loss) for loss in scored["test_loss_nats"].values())
    assert math.isfinite(scored["target_loss_nats"])

    packing = record["packing"]
    assert packing["trained"] == 8 and packing["workers_per_device"] == packing["workers"] == 2
    for key in (
        "device_tokens_per_s",
        "one_per_device_tokens_per_s",
        "speedup",
        "swarm_tokens_per_s",
        "one_per_device_swarm_tokens_per_s",
    ):
        assert packing[key] > 0, key

    assert all(record[name]["wall_s"] > 0 for name in PARTS)
    assert record["wall_s"] >= sum(record[name]["wall_s"] for name in PARTS)
