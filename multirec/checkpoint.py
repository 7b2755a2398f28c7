"""Training checkpoints: resume `train_network` exactly where it stopped.

A checkpoint is the directory `<checkpoint_dir>/latest`, written crash-safely every
`checkpoint_every` epochs and when training ends (`multirec._files.atomic_directory`:
`latest/multirec.json` names the current `latest/version-<hex>/`; `checkpoint_path` finds it):

    state.json           epochs done, History, evaluations without improvement, the numpy RNG
                         state, optimizer hyper-parameters, the run's fingerprint (parameter
                         shapes, training settings, data hashes)
    tensors.safetensors  network state, best and last-good weights, optimizer state
                         (flattened), torch RNG states of every rank
    manifest.json        SHA-256 of both files

JSON and safetensors only: reading a checkpoint never executes code (no pickle, no torch.load).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._files import atomic_directory, current_version, verify_manifest, write_manifest
from .errors import ConfigError, ModelFileError

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "checkpoint_path", "fingerprint",
           "check_fingerprint", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 2
_FILES = ("state.json", "tensors.safetensors")
_FORMAT = "multirec.TrainingCheckpoint"
_SUBDIR = "latest"

# Training settings that may change between a run and its resumption; all others must match.
RESUMABLE_SETTINGS = frozenset({"epochs", "patience", "checkpoint_dir", "checkpoint_every", "resume",
                                "show_progress", "device", "distributed"})


@dataclass
class Checkpoint:
    """The state of a training run after `epoch` epochs."""

    epoch: int  # epochs completed
    history: dict[str, Any]  # `History` fields
    bad_evals: int  # evaluations without improvement
    net: dict[str, torch.Tensor]  # the network's state_dict (weights and frozen inputs)
    best: dict[str, torch.Tensor]  # best parameters so far
    last_good: dict[str, torch.Tensor]  # parameters at the last evaluation
    optimizer: dict[str, Any]  # torch optimizer state_dict
    numpy_rng: dict[str, Any]  # `np.random.Generator.bit_generator.state` (shared by all ranks)
    torch_rng: list[dict[str, torch.Tensor]]  # per rank: {"generator", "cpu"[, "cuda"]} states
    fingerprint: dict[str, Any] = field(default_factory=dict)


def fingerprint(net: torch.nn.Module, settings: dict[str, Any], train: sp.csr_matrix,
                valid: sp.csr_matrix | None) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: network shapes, settings, data."""
    return {
        "parameters": {n: list(p.shape) for n, p in net.named_parameters()},
        "buffers": {n: list(b.shape) for n, b in net.named_buffers()},
        "settings": {k: v for k, v in settings.items() if k not in RESUMABLE_SETTINGS},
        "train_data": _matrix_hash(train),
        "valid_data": None if valid is None else _matrix_hash(valid),
    }


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Raise ConfigError naming every difference between a checkpoint's run and this one."""
    problems = []
    for kind in ("parameters", "buffers"):
        old, new = saved.get(kind, {}), current[kind]
        for name in sorted(set(old) | set(new)):
            if name not in new:
                problems.append(f"{kind[:-1]} {name!r} {old[name]} is not in this network")
            elif name not in old:
                problems.append(f"{kind[:-1]} {name!r} {new[name]} is not in the checkpoint")
            elif old[name] != new[name]:
                problems.append(f"{kind[:-1]} {name!r} has shape {old[name]} in the checkpoint, "
                                f"{new[name]} now")
    old, new = saved.get("settings", {}), current["settings"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            problems.append(f"{name}={old.get(name)!r} in the checkpoint, {new.get(name)!r} now")
    for kind in ("train_data", "valid_data"):
        if saved.get(kind) != current[kind]:
            problems.append(f"the {kind.replace('_', ' ')} differ from the checkpoint's")
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ConfigError(f"the checkpoint in {where!r} belongs to a different run: {shown}. Resume "
                          "with the same network, settings and data, or pass resume=False or "
                          "another checkpoint_dir to start afresh.")


def save_checkpoint(checkpoint_dir: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write `ckpt` to `<checkpoint_dir>/latest` atomically; returns that path."""
    from safetensors.torch import save_file

    tensors = _prefixed("net", ckpt.net)
    tensors |= _prefixed("best", ckpt.best)
    same = ckpt.last_good is ckpt.best  # usually the same snapshot: store it once
    if not same:
        tensors |= _prefixed("last_good", ckpt.last_good)
    optim_tensors, optim_meta = _flatten_optimizer(ckpt.optimizer)
    tensors |= optim_tensors
    for r, states in enumerate(ckpt.torch_rng):
        tensors |= _prefixed(f"rng.{r}", states)
    target = Path(checkpoint_dir) / _SUBDIR
    old_layout = _FILES if current_version(target, _FORMAT) is None else ()  # version-1 files
    with atomic_directory(target, overwrite=True, marker=_FORMAT, replaces=old_layout) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                  str(tmp / "tensors.safetensors"))
        meta = {
            "format": _FORMAT, "format_version": CHECKPOINT_VERSION,
            "epoch": ckpt.epoch, "history": ckpt.history, "bad_evals": ckpt.bad_evals,
            "last_good_is_best": same, "optimizer": optim_meta, "numpy_rng": ckpt.numpy_rng,
            "world_size": len(ckpt.torch_rng), "fingerprint": ckpt.fingerprint,
        }
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        write_manifest(tmp, _FILES)
    return target


def checkpoint_path(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The folder holding the current checkpoint's files; None when there is none yet."""
    return current_version(Path(checkpoint_dir) / _SUBDIR, _FORMAT)


def load_checkpoint(checkpoint_dir: str | os.PathLike) -> Checkpoint | None:
    """Read `<checkpoint_dir>/latest`; None when there is no checkpoint yet."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    root = Path(checkpoint_dir) / _SUBDIR
    folder = current_version(root, _FORMAT)
    if folder is None:
        if (root / "state.json").is_file():
            raise ModelFileError(f"the checkpoint in {str(root)!r} was written by an older multirec "
                                 f"(format 1); this one resumes format {CHECKPOINT_VERSION}. Delete "
                                 f"{str(root)!r} or pass resume=False to start afresh")
        return None
    try:
        files = verify_manifest(folder, _FILES)
    except ModelFileError as exc:
        raise ModelFileError(f"{exc} Or delete {str(root)!r} to start afresh.") from exc
    meta_path = folder / "state.json"
    try:
        meta = json.loads(files["state.json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{str(meta_path)!r} is corrupt ({exc}); delete {str(root)!r} to "
                             "start afresh") from exc
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or not isinstance(
            meta.get("format_version"), int):
        raise ModelFileError(f"{str(meta_path)!r} is not a multirec training checkpoint")
    if meta["format_version"] != CHECKPOINT_VERSION:
        raise ModelFileError(f"the checkpoint in {str(root)!r} has format {meta['format_version']}; "
                             f"this multirec resumes format {CHECKPOINT_VERSION}. Delete it or pass "
                             "resume=False to start afresh")
    try:
        tensors = load_tensors(files["tensors.safetensors"])
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"cannot read {str(folder / 'tensors.safetensors')!r}: {exc}") from exc
    best = _unprefixed("best", tensors)
    return Checkpoint(
        epoch=int(meta["epoch"]), history=meta["history"], bad_evals=int(meta["bad_evals"]),
        net=_unprefixed("net", tensors), best=best,
        last_good=best if meta["last_good_is_best"] else _unprefixed("last_good", tensors),
        optimizer=_unflatten_optimizer(tensors, meta["optimizer"]), numpy_rng=meta["numpy_rng"],
        torch_rng=[_unprefixed(f"rng.{r}", tensors) for r in range(int(meta["world_size"]))],
        fingerprint=meta["fingerprint"],
    )


# ---------------------------------------------------------------------- helpers
def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state_dict → (tensors `optim.<param index>.<key>`, JSON-able rest)."""
    tensors, scalars = {}, {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
              for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in _unprefixed("optim", tensors).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, slots in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(slots)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _matrix_hash(x: sp.spmatrix) -> str:
    x = sp.csr_matrix(x, copy=True)
    x.sum_duplicates()
    h = hashlib.sha256(str(x.shape).encode())
    for arr in (x.indptr.astype(np.int64), x.indices.astype(np.int64)):
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
