"""Saving and loading models: JSON + safetensors only, atomic, checksummed, never pickle.

A saved model is a directory:

    config.json                 format version, constructor arguments, sizes, SHA-256 of files
    model.safetensors           network weights and frozen inputs (content embeddings, LightFM factors)
    interactions.safetensors    each user's items (CSR arrays), for filter_seen and fold-in
    ids.json                    raw user and item IDs in index order

Encoders are referenced by their config (model name / path), not copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from encoders import Encoder

from .errors import ModelFileError
from .idmap import IdMap
from .network import TwoTowerNetwork

__all__ = ["save_model", "load_model", "atomic_directory", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_FILES = ("model.safetensors", "interactions.safetensors", "ids.json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class atomic_directory:  # noqa: N801 - used like a function: `with atomic_directory(d) as tmp:`
    """Write into a temporary sibling directory; on success fsync and rename it into place.

    A crash at any point leaves either the previous directory or the new one, never a mix.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.tmp = self.target.parent / f".{self.target.name}.tmp-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        for f in self.tmp.iterdir():
            _fsync(f)
        _fsync(self.tmp)
        backup = None
        if self.target.exists():
            if not self.target.is_dir():
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise ModelFileError(f"{str(self.target)!r} exists and is not a directory")
            backup = self.target.parent / f".{self.target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.target, backup)
        os.replace(self.tmp, self.target)
        _fsync(self.target.parent)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)


def save_model(model: Any, directory: str | os.PathLike) -> None:
    """Save a fitted `MultimodalRecommender` to `directory` (replaced atomically)."""
    from safetensors.torch import save_file

    from . import __version__

    net = model.network
    ui = model.user_items_.tocsr()
    with atomic_directory(directory) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        save_file({"indptr": torch.from_numpy(ui.indptr.astype(np.int64)),
                   "indices": torch.from_numpy(ui.indices.astype(np.int64)),
                   "shape": torch.tensor(ui.shape, dtype=torch.int64)},
                  str(tmp / "interactions.safetensors"))
        (tmp / "ids.json").write_text(json.dumps(
            {"users": model.user_map_.to_list(), "items": model.item_map_.to_list()},
            ensure_ascii=False))
        config = {
            "format": "multirec.MultimodalRecommender",
            "format_version": FORMAT_VERSION,
            "multirec_version": __version__,
            "model": model.get_config(),
            "modalities": model.modalities_,
            "content_dims": {m: int(getattr(net, f"content_{m}").shape[1]) for m in model.modalities_},
            "cf_dim": int(net.cf_item.shape[1]) or None,
            "finetuned": net.finetuned,
            "item_item": net.use_item_item,
            "n_users": net.n_users,
            "n_items": net.n_items,
            "files": {name: _sha256(tmp / name) for name in _FILES},
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))


def load_model(cls: type, directory: str | os.PathLike, device: str = "cpu") -> Any:
    """Load a model saved by `save_model`; verifies the format version and checksums."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(directory)
    cfg_path = root / "config.json"
    if not cfg_path.is_file():
        raise ModelFileError(f"{str(root)!r} is not a saved multirec model (no config.json); "
                             "save one with model.save_pretrained(path)")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{str(cfg_path)!r} is corrupt ({exc}); re-save the model") from exc
    version = config.get("format_version")
    if config.get("format") != "multirec.MultimodalRecommender" or version is None:
        raise ModelFileError(f"{str(cfg_path)!r} is not a multirec model config")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{str(root)!r} was saved in format {version}, newer than this multirec "
                             f"reads ({FORMAT_VERSION}); upgrade multirec")
    for name, digest in config.get("files", {}).items():
        path = root / name
        if not path.is_file():
            raise ModelFileError(f"{str(path)!r} is missing; the saved model is incomplete")
        if _sha256(path) != digest:
            raise ModelFileError(f"{str(path)!r} does not match its checksum in config.json: the file "
                                 "is corrupt or was modified. Re-save the model.")
    try:
        state = load_file(str(root / "model.safetensors"), device="cpu")
        arrays = load_file(str(root / "interactions.safetensors"), device="cpu")
        ids = json.loads((root / "ids.json").read_text())
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read the model files in {str(root)!r}: {exc}") from exc

    kwargs = dict(config["model"])
    encoder_configs = kwargs.pop("encoders")
    kwargs["device"] = device
    model = cls(encoders=encoder_configs, **kwargs)
    net = TwoTowerNetwork(
        config["n_users"], config["n_items"], config["content_dims"], config["cf_dim"],
        dim=kwargs["dim"], fusion=kwargs["fusion"], use_id_embeddings=kwargs["use_id_embeddings"],
        use_user_cf=kwargs["use_user_cf"], item_item=config.get("item_item", False))
    finetuned = {}
    for m in config.get("finetuned", []):  # fine-tuned encoders: weights are in model.safetensors
        finetuned[m] = Encoder.from_config(encoder_configs[m]).to(device)
    if finetuned:
        net.attach_encoders(finetuned, batch_size=kwargs.get("encode_batch_size", 32))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"the weights in {str(root)!r} do not match its config.json: {exc}") from exc
    model.network = net.to(device).eval()
    model.user_map_ = IdMap.from_list(ids["users"], kind="user")
    model.item_map_ = IdMap.from_list(ids["items"], kind="item")
    shape = tuple(int(x) for x in arrays["shape"].tolist())
    indptr, indices = arrays["indptr"].numpy(), arrays["indices"].numpy()
    model.user_items_ = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
    model.modalities_ = list(config["modalities"])
    model.encoder_configs_ = encoder_configs
    for m, enc in finetuned.items():
        model._encoders[m] = enc.eval()
    if (len(model.user_map_), len(model.item_map_)) != (net.n_users, net.n_items) or shape != (
            net.n_users, net.n_items):
        raise ModelFileError(f"ids.json / interactions in {str(root)!r} do not match the weights' sizes")
    return model
