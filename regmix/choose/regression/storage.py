"""A fitted regressor on disk in plain formats: nothing in data/regression runs when loaded.

data/regression/ travels through DVC remotes, so it holds data only:

    model.json          the manifest: format version, kind, target name, domains, each model's
                        state (hyperparameters, coefficients, a GP's fitted kernel), the
                        training proxies' ids and out-of-fold predictions, their seed noise and
                        the sha256 of every other file
    model.txt           a LightGBM model's trees, in LightGBM's own text format
    model.rows.json     a GP's training rows (it is refitted on load, the optimizer off)
    member_<i>.*        the same for bootstrap member i; an ensemble's members add their kind
                        (model.lightgbm.txt, ...)

Loading refuses, naming the file, a pickle (the older model.pkl, or pickle bytes under a new
name), truncated or foreign JSON, a file whose sha256 differs from the recorded one, and a
regressor fitted for another target or other domains than the caller expects.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from regmix.choose.regression.fitted import FittedRegressor
from regmix.choose.regression.models import ReadText, restore_model
from regmix.errors import UserError
from regmix.files import write_json, write_text
from regmix.target import Target

FORMAT, VERSION = "regmix-regressor", 1
MANIFEST = "model.json"
PICKLE = "model.pkl"  # the older format, whose loading ran code
OWNED = ("model*", "member_*")  # the names save_regressor writes, so removes first
PICKLE_MAGIC = b"\x80"  # the first byte of a pickle of protocol 2 or later
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # a plain name inside the folder
REFIT = "re-run the fit stage (dvc repro fit)"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_regressor(regressor: FittedRegressor, folder: str | Path) -> None:
    """Write `regressor` to `folder` (see the module docstring), replacing an earlier one."""
    folder = Path(folder)
    texts: dict[str, str] = {}
    spec: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": regressor.model,
        "target": regressor.target,
        "domains": list(regressor.domains),
        "base": regressor.base.state("model", texts),
        "members": [m.state(f"member_{i}", texts) for i, m in enumerate(regressor.members, 1)],
    }
    if regressor.out_of_fold is not None:
        true, predicted = regressor.out_of_fold
        spec["out_of_fold"] = {"true": [float(v) for v in true], "predicted": [float(v) for v in predicted]}
        if regressor.proxy_ids is not None:
            spec["out_of_fold"]["id"] = [str(i) for i in regressor.proxy_ids]
    if regressor.seed_std is not None and np.isfinite(regressor.seed_std):
        spec["seed_std"] = float(regressor.seed_std)
    spec["files"] = {name: _sha256(text.encode("utf-8")) for name, text in texts.items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)  # first: a killed save leaves no manifest to load
    for stale in [p for pattern in OWNED for p in folder.glob(pattern) if p.is_file()]:
        stale.unlink()
    for name, text in texts.items():
        write_text(folder / name, text)
    write_json(folder / MANIFEST, spec)


def load_regressor(folder: str | Path, target: Target, domains: Optional[Sequence[str]] = None) -> FittedRegressor:
    """What `save_regressor` wrote to `folder`, fitted for `target` and, when given, over `domains`."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.exists():
        if (folder / PICKLE).exists():
            raise UserError(
                f"{folder / PICKLE} is a pickle of an older regmix: refused unread (unpickling runs code); {REFIT}"
            )
        raise UserError(f"{manifest} not found: {REFIT}")
    spec = _read_manifest(manifest)
    _check_expected(spec, manifest, target, domains)
    read_text = _verified_reader(folder, spec)
    try:
        base = restore_model(spec["base"], read_text)
        members = [restore_model(state, read_text) for state in spec["members"]]
        oof = spec.get("out_of_fold")  # absent in a regressor saved without its CV
        out_of_fold = None if oof is None else (np.array(oof["true"], float), np.array(oof["predicted"], float))
        ids = None if oof is None or "id" not in oof else [str(i) for i in oof["id"]]
        seed_std = spec.get("seed_std")
        return FittedRegressor(
            list(spec["domains"]),
            spec["target"],
            spec["model"],
            base,
            members,
            out_of_fold,
            ids,
            None if seed_std is None else float(seed_std),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{manifest} does not describe a regressor this regmix can load ({e!r}); {REFIT}") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if raw.startswith(PICKLE_MAGIC):
        raise UserError(f"{path} is a pickle, not JSON: refused unread (unpickling runs code); {REFIT}")
    try:
        spec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(
            f"{path} is not valid JSON ({e}): truncated, or not written by the fit stage; {REFIT}"
        ) from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise UserError(f"{path} does not describe a fitted regressor (no format {FORMAT!r}); {REFIT}")
    if spec.get("version") != VERSION:
        raise UserError(f"{path}: format version {spec.get('version')!r}, this regmix reads {VERSION}; {REFIT}")
    return spec


def _check_expected(spec: dict[str, Any], path: Path, target: Target, domains: Optional[Sequence[str]]) -> None:
    if spec.get("target") != target.name:
        raise UserError(f"{path} predicts target {spec.get('target')!r}, not {target.name!r} (params' target); {REFIT}")
    stored = spec.get("domains")
    if not isinstance(stored, list) or not all(isinstance(d, str) for d in stored):
        raise UserError(f"{path}: `domains` is not a list of domain names; {REFIT}")
    if domains is not None and sorted(stored) != sorted(domains):
        missing, extra = sorted(set(domains) - set(stored)), sorted(set(stored) - set(domains))
        raise UserError(f"{path} was fitted on other domains than expected (missing {missing}, extra {extra}); {REFIT}")


def _verified_reader(folder: Path, spec: dict[str, Any]) -> ReadText:
    """A reader of the files the manifest lists: each must have the sha256 it records."""
    files = spec.get("files")
    if not isinstance(files, dict):
        raise UserError(f"{folder / MANIFEST}: no `files` table of stored files and their sha256; {REFIT}")

    def read_text(name: str) -> str:
        if name not in files or not FILE_NAME.match(name):
            raise UserError(f"{folder / MANIFEST} refers to {name!r}, which is not among its stored files; {REFIT}")
        path = folder / name
        if not path.exists():
            raise UserError(f"{path} not found (listed in {MANIFEST}); {REFIT}")
        raw = path.read_bytes()
        if _sha256(raw) != files[name]:
            raise UserError(
                f"{path}: its sha256 is not the one {MANIFEST} records, so it is not the file the fit wrote; {REFIT}"
            )
        return raw.decode("utf-8")

    return read_text
