"""Saving and loading models: JSON + safetensors only, crash-safe, confined, never pickle.

A saved model is a directory (format 2; the crash-safe scheme is `multirec._files`):

    multirec.json                   pointer to the current version folder
    version-<hex>/config.json       format version, constructor arguments, network shape
    version-<hex>/model.safetensors network weights and frozen inputs (content, LightFM factors)
    version-<hex>/interactions.safetensors   each user's items (CSR arrays)
    version-<hex>/item_item.safetensors      item-item weights (`ItemItemWeights.to_arrays`; empty without)
    version-<hex>/ids.json          raw user and item IDs in index order
    version-<hex>/history.json      the training `History` (per-epoch logs, best epoch, ...)
    version-<hex>/manifest.json     SHA-256 of each file above, config.json included

Loading trusts nothing in the folder: every file needs its checksum, no name may leave the
folder, sizes/shapes/dtypes/index ranges/finiteness are checked before use, `cache_dir` and
`checkpoint_dir` are never taken from the file, and an encoder config naming a local path
must point inside the model folder (`"./sub/dir"`) or be supplied as `encoder_paths`.
Models of format 1 (flat folders of multirec < 0.2) are refused with a format-version error;
saving over one with `overwrite=True` replaces it.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from encoders import Encoder, is_packaged

from . import _files
from ._files import (
    current_version,
    read_file,
    safe_child,
    verify_manifest,
    write_manifest,
)
from .errors import ConfigError, ModelFileError
from .history import History
from .idmap import IdMap
from .network import TwoTowerNetwork

__all__ = ["save_model", "load_model", "read_config", "check_save_target",
           "FORMAT_VERSION", "MARKER"]

FORMAT_VERSION = 2
MARKER = "multirec.MultimodalRecommender"
_FILES = ("config.json", "model.safetensors", "interactions.safetensors", "item_item.safetensors",
          "ids.json", "history.json")
_V1_FILES = ("config.json", "model.safetensors", "interactions.safetensors", "ids.json")
_CONFIG_KEYS = {"format", "format_version", "multirec_version", "model", "network", "modalities",
                "fit_config"}
_NETWORK_KEYS = {"n_users", "n_items", "content_dims", "cf_dim", "dim", "fusion", "use_id_embeddings",
                 "use_user_cf", "item_item", "finetuned"}
_MAX_SIZE = 2**31  # users / items one network holds
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


# ====================================================================== saving
def save_model(model: Any, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save a fitted `MultimodalRecommender` into `directory`; returns the version folder.

    Refuses a non-empty directory that holds no multirec model, and a previous save unless
    `overwrite=True`; files multirec did not write are never deleted. Crash-safe: the old or
    the new model is loadable at every instant.
    """
    from safetensors.torch import save_file

    from . import __version__

    root = Path(directory)
    net = model.network
    ui = model.user_items_.tocsr()
    replaces = _V1_FILES if _legacy_version(root) is not None else ()
    cfg = dict(model.get_config())
    cfg["encoders"] = {m: _portable(c, root) for m, c in cfg["encoders"].items()}
    for key in ("cache_dir", "checkpoint_dir"):  # local paths: not part of a shareable model
        if key in cfg:
            cfg[key] = None
    if "checkpoint_dir" in cfg:
        cfg["resume"], cfg["checkpoint_every"] = False, 0
    history = getattr(model, "history_", None)
    writer = _files.atomic_directory(root, overwrite=overwrite, marker=MARKER, replaces=replaces)
    with writer as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        save_file({"indptr": torch.from_numpy(ui.indptr.astype(np.int64)),
                   "indices": torch.from_numpy(ui.indices.astype(np.int64)),
                   "shape": torch.tensor(ui.shape, dtype=torch.int64)},
                  str(tmp / "interactions.safetensors"))
        item_item = getattr(model, "item_item_", None)
        save_file({} if item_item is None else {
            k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in item_item.to_arrays().items()},
            str(tmp / "item_item.safetensors"))
        (tmp / "ids.json").write_text(json.dumps(
            {"users": model.user_map_.to_list(), "items": model.item_map_.to_list()},
            ensure_ascii=False), encoding="utf-8")
        (tmp / "history.json").write_text(json.dumps(
            None if history is None else _history_dict(history), indent=1), encoding="utf-8")
        config = {
            "format": MARKER,
            "format_version": FORMAT_VERSION,
            "multirec_version": __version__,
            "model": cfg,
            "network": _network_spec(net, model),
            "modalities": list(model.modalities_),
            "fit_config": getattr(model, "fit_config_", None),
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False),
                                         encoding="utf-8")
        write_manifest(tmp, _FILES)
    return root / writer.version


def check_save_target(directory: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Raise the ModelFileError `save_model(model, directory, overwrite=...)` would raise about
    the directory, without writing anything (e.g. before a long `fit`)."""
    replaces = _V1_FILES if _legacy_version(Path(directory)) is not None else ()
    _files.check_target(directory, overwrite=overwrite, marker=MARKER, replaces=replaces)


def _history_dict(history: Any) -> dict[str, Any]:
    if hasattr(history, "to_dict"):
        return history.to_dict()
    from dataclasses import asdict

    return asdict(history)


def _network_spec(net: TwoTowerNetwork, model: Any) -> dict[str, Any]:
    """The network's shape (`NetworkConfig` fields), from `net.config` when it has one."""
    if hasattr(net, "config") and hasattr(net.config, "to_dict"):
        return dict(net.config.to_dict())
    return {  # networks built from positional arguments (before NetworkConfig)
        "n_users": net.n_users, "n_items": net.n_items,
        "content_dims": {m: int(getattr(net, f"content_{m}").shape[1]) for m in net.modalities},
        "cf_dim": int(net.cf_item.shape[1]), "dim": int(net.dim), "fusion": model.fusion,
        "use_id_embeddings": bool(net.use_id_embeddings), "use_user_cf": bool(net.use_user_cf),
        "item_item": bool(net.use_item_item), "finetuned": list(net.finetuned),
    }


def _portable(config: dict[str, Any], root: Path) -> dict[str, Any]:
    """An encoder config whose existing local paths are written as "./relative" when inside
    `root`, else absolute (a relative path would mean another folder on load)."""
    out = dict(config)
    base = Path(os.path.abspath(root))
    for key, value in config.items():
        if (key == "name" or not isinstance(value, str) or is_packaged(value)
                or not os.path.exists(value)):
            continue
        path = Path(os.path.abspath(value))
        if path != base and path.is_relative_to(base):
            out[key] = "./" + path.relative_to(base).as_posix()
        elif _is_local(key, value) or value.startswith("./"):
            out[key] = str(path)
    return out


# ====================================================================== loading
def load_model(cls: type, directory: str | os.PathLike, device: str = "cpu", *,
               encoder_paths: dict[str, str | os.PathLike] | None = None,
               cache_dir: str | os.PathLike | None = None,
               checkpoint_dir: str | os.PathLike | None = None) -> Any:
    """Load a model saved by `save_model`, checking everything in the folder first.

    Args:
        directory: the folder given to `save_model`.
        device: where the network goes.
        encoder_paths: `{modality: local path}` for encoders whose saved config names a
            local path outside the model folder (or to use a local copy of a hub model).
        cache_dir, checkpoint_dir: for the loaded model (never read from the folder).
    Raises:
        ModelFileError: the folder is not a (complete, intact, consistent) saved model.
        ConfigError: `encoder_paths` names an unknown modality or a missing path.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ModelFileError(f"{str(root)!r} is not a directory; pass the folder given to "
                             "model.save_pretrained(path)")
    config, spec, users, items, history, state, user_items, item_item = _read_checked(root)
    fit_config = config["fit_config"]
    model, encoder_configs, kwargs = _new_model(cls, config, spec, root, device, encoder_paths,
                                                cache_dir, checkpoint_dir)
    _fill_state_defaults(spec, state)
    _check_state_shapes(spec, state, root, has_item_item=item_item is not None)
    net = _build_network(spec)
    finetuned = {m: Encoder.from_config(encoder_configs[m]).to(device) for m in spec["finetuned"]}
    if finetuned:
        net.attach_encoders(finetuned, batch_size=kwargs.get("encode_batch_size", 32))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"the weights in {str(root)!r} do not match its config.json: {exc}") from exc
    net = net.to(device).eval()
    for enc in finetuned.values():
        enc.eval()
    _restore(model, net, item_item, user_items, users, items, finetuned, encoder_configs,
             history if history is not None else History(), fit_config or {})
    return model


def _read_checked(root: Path) -> tuple[Any, ...]:
    """Every file of the current save, read once and checked: (config, network spec, user
    and item IdMaps, History | None, network state, user-items CSR, item-item weights)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    files = _read_current(root)
    config = _json(files.pop("config.json"), root, "config.json")
    spec = _check_config(config, root)
    ids = _json(files.pop("ids.json"), root, "ids.json")
    users, items = _check_ids(ids, spec, root)
    history = _check_history(_json(files.pop("history.json"), root, "history.json"), root)
    try:
        state = load_tensors(files.pop("model.safetensors"))
        arrays = load_tensors(files.pop("interactions.safetensors"))
        ii_arrays = load_tensors(files.pop("item_item.safetensors"))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"cannot read the tensors in {str(root)!r}: {exc}") from exc
    _check_finite(state, root)
    _check_finite(ii_arrays, root)
    user_items = _check_interactions(arrays, spec, root)
    item_item = _check_item_item(ii_arrays, spec, root)
    if config["fit_config"] is not None and not isinstance(config["fit_config"], dict):
        raise ModelFileError(f"config.json in {str(root)!r}: fit_config must be a dict or null")
    return config, spec, users, items, history, state, user_items, item_item


def _new_model(cls: type, config: dict[str, Any], spec: dict[str, Any], root: Path, device: str,
               encoder_paths: Any, cache_dir: Any, checkpoint_dir: Any
               ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """An unfitted model from the saved settings (paths from the caller, never the file)."""
    kwargs = dict(config["model"])
    kwargs.setdefault("item_item_dropout", 0.0)  # saved before the setting existed: plain EASE
    encoder_configs = _check_encoders(kwargs.pop("encoders", None), config["modalities"], spec,
                                      root, encoder_paths)
    kwargs["device"] = device
    kwargs["cache_dir"] = None if cache_dir is None else os.fspath(cache_dir)
    if "checkpoint_dir" in kwargs or checkpoint_dir is not None:
        kwargs["checkpoint_dir"] = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        if checkpoint_dir is None:
            kwargs["resume"], kwargs["checkpoint_every"] = False, 0
    try:
        model = cls(encoders=encoder_configs, **kwargs)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ModelFileError(f"the model settings in {str(root / 'config.json')!r} are invalid "
                             f"for this multirec: {exc}") from exc
    return model, encoder_configs, kwargs


def _restore(model: Any, net: TwoTowerNetwork, item_item: Any, user_items: sp.csr_matrix,
             users: IdMap, items: IdMap, finetuned: dict[str, Encoder],
             encoder_configs: dict[str, dict[str, Any]], history: History,
             fit_config: dict[str, Any]) -> None:
    """Give a freshly constructed model its fitted state (the same path `fit` ends with)."""
    from .fit import Fitted

    model.restore_fitted(Fitted(
        network=net, item_item=item_item, user_items=user_items, user_map=users,
        item_map=items, encoders=finetuned, encoder_configs=encoder_configs,
        history=history, fit_config=fit_config))


def _check_item_item(arrays: dict[str, torch.Tensor], spec: dict[str, Any], root: Path) -> Any:
    """`ItemItemWeights` from item_item.safetensors (None when empty), shapes and ranges checked."""
    if not arrays:
        return None
    where = f"item_item.safetensors in {str(root)!r}"
    try:
        from .itemitem import ItemItemWeights
    except ImportError as exc:
        raise ModelFileError(f"{where} holds item-item weights this multirec cannot read") from exc
    n = spec["n_items"]
    d = {k: v.numpy() for k, v in arrays.items()}
    if "weights" in d:
        if d["weights"].shape != (n, n):
            raise ModelFileError(f"{where}: weights of shape {list(d['weights'].shape)}, the model "
                                 f"has {n} items")
    elif {"data", "indices", "indptr", "shape"} <= set(d):
        indptr, indices = d["indptr"], d["indices"]
        if tuple(d["shape"].tolist()) != (n, n) or indptr.ndim != 1 or len(indptr) != n + 1 or (
                indptr[0] != 0 or indptr[-1] != len(indices) or len(indices) != len(d["data"])
                or bool((np.diff(indptr) < 0).any())) or (
                len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n)):
            raise ModelFileError(f"{where}: the sparse weights are not a valid ({n}, {n}) CSR "
                                 "matrix (shape, row pointers or indices); the file is corrupt")
    l2 = d.get("l2")
    if l2 is None or l2.shape != (1,) or not float(l2[0]) > 0:
        raise ModelFileError(f"{where}: l2 must be one number > 0, got {l2!r}")
    try:
        return ItemItemWeights.from_arrays(d)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ModelFileError(f"{where} is invalid: {exc}") from exc


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The config.json of a saved model, after its checksums and format are verified."""
    root = Path(directory)
    if not root.is_dir():
        raise ModelFileError(f"{str(root)!r} is not a directory; pass the folder given to "
                             "model.save_pretrained(path)")
    config = _json(_read_current(root)["config.json"], root, "config.json")
    _check_config(config, root)
    return config


def _read_current(root: Path) -> dict[str, bytes]:
    """The verified files of the current version (retried once if a save swaps it meanwhile)."""
    for attempt in (0, 1):
        folder = current_version(root, MARKER)
        if folder is None:
            legacy = _legacy_version(root)
            if legacy is not None:
                raise ModelFileError(
                    f"{str(root)!r} holds a model saved in format {legacy!r} by an older multirec; "
                    f"this multirec reads format {FORMAT_VERSION} only. Re-fit the model and save "
                    "it again (saving into the same folder with overwrite=True replaces it).")
            raise ModelFileError(f"{str(root)!r} is not a saved multirec model (no "
                                 "multirec.json); save one with model.save_pretrained(path)")
        try:
            return verify_manifest(folder, _FILES)
        except ModelFileError:
            if attempt or current_version(root, MARKER) == folder:
                raise
    raise AssertionError("unreachable")


def _legacy_version(root: Path) -> Any:
    """format_version of a flat format-1 save in `root`, else None."""
    try:
        cfg = json.loads(read_file(root, "config.json", max_bytes=1 << 24))
    except (ModelFileError, OSError, ValueError):
        return None
    if isinstance(cfg, dict) and cfg.get("format") == MARKER and not (root / "multirec.json").exists():
        return cfg.get("format_version")
    return None


def _json(data: bytes, root: Path, name: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{name} in {str(root)!r} is corrupt ({exc}); re-save the model") from exc


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_config(config: Any, root: Path) -> dict[str, Any]:
    """Validate config.json's structure; returns the network spec."""
    where = f"config.json in {str(root)!r}"
    if not isinstance(config, dict) or config.get("format") != MARKER:
        raise ModelFileError(f"{where} is not a multirec model config")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{where} has format_version {version!r}; this multirec reads "
                             f"format {FORMAT_VERSION}. Use the multirec that saved it, or re-fit "
                             "and save again.")
    keys = set(config)
    if keys != _CONFIG_KEYS:
        raise ModelFileError(f"{where} has unknown keys {sorted(keys - _CONFIG_KEYS)} / lacks "
                             f"{sorted(_CONFIG_KEYS - keys)}; re-save the model")
    if not isinstance(config["model"], dict):
        raise ModelFileError(f"{where}: 'model' must be a dict of settings")
    spec = config["network"]
    if not isinstance(spec, dict):
        raise ModelFileError(f"{where}: 'network' must be a dict")
    allowed = _network_fields()
    unknown, missing = sorted(set(spec) - allowed), sorted(allowed - set(spec))
    if unknown or missing:
        raise ModelFileError(f"{where}: 'network' has unknown keys {unknown} / lacks {missing}")
    for name in ("n_users", "n_items"):
        n = spec[name]
        if not _is_int(n) or not 1 <= n <= _MAX_SIZE:
            raise ModelFileError(f"{where}: network {name}={n!r}; it must be an integer between 1 "
                                 f"and {_MAX_SIZE}. The file was edited or is corrupt; re-save it.")
    dims = spec["content_dims"]
    if not isinstance(dims, dict) or not all(
            isinstance(m, str) and m.isidentifier() and _is_int(d) and 1 <= d <= 1 << 20
            for m, d in dims.items()):
        raise ModelFileError(f"{where}: network content_dims={dims!r}; it must map modality "
                             "names to dims between 1 and 2^20")
    for name, low in (("cf_dim", 0), ("dim", 1)):
        if not _is_int(spec[name]) or not low <= spec[name] <= 1 << 16:
            raise ModelFileError(f"{where}: network {name}={spec[name]!r}; it must be an integer "
                                 f">= {low} and <= 65536")
    modalities = config["modalities"]
    if not isinstance(modalities, list) or list(modalities) != list(dims):
        raise ModelFileError(f"{where}: modalities {modalities!r} do not match the network's "
                             f"content modalities {list(dims)}")
    if not isinstance(spec["finetuned"], list) or not set(spec["finetuned"]) <= set(dims):
        raise ModelFileError(f"{where}: network finetuned={spec['finetuned']!r} must list some "
                             f"of the modalities {list(dims)}")
    return spec


def _network_fields() -> set[str]:
    try:
        from .config import NetworkConfig
    except ImportError:
        return set(_NETWORK_KEYS)
    return {f.name for f in fields(NetworkConfig)}


def _build_network(spec: dict[str, Any]) -> TwoTowerNetwork:
    """Build the network that `spec` describes (NetworkConfig or positional constructor)."""
    try:
        if "config" in inspect.signature(TwoTowerNetwork.__init__).parameters:
            from .config import NetworkConfig

            return TwoTowerNetwork(NetworkConfig(**{**spec, "finetuned": []}))
        return TwoTowerNetwork(
            spec["n_users"], spec["n_items"], spec["content_dims"], spec["cf_dim"] or None,
            dim=spec["dim"], fusion=spec["fusion"], use_id_embeddings=spec["use_id_embeddings"],
            use_user_cf=spec["use_user_cf"], item_item=spec["item_item"])
    except (ConfigError, ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"the network described in config.json cannot be built: {exc}") from exc


def _fill_state_defaults(spec: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """Add the tensors of `TwoTowerNetwork.STATE_DEFAULTS` that a save made before they
    existed lacks, shaped as the network needs them (built on the meta device)."""
    missing = [k for k in TwoTowerNetwork.STATE_DEFAULTS if k not in state]
    if not missing:
        return
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in _build_network(spec).state_dict().items()}
    for key in missing:
        if key in shapes:
            state[key] = torch.full(shapes[key], TwoTowerNetwork.STATE_DEFAULTS[key])


def _check_state_shapes(spec: dict[str, Any], state: dict[str, torch.Tensor], root: Path, *,
                        has_item_item: bool) -> None:
    """Compare the saved tensors' names/shapes/dtypes with a network built on the meta device
    (no memory allocated, so absurd sizes fail here, not in an allocation)."""
    with torch.device("meta"):
        expected = {k: (tuple(v.shape), v.dtype) for k, v in _build_network(spec).state_dict().items()}
    problems = []
    if "item_item" not in expected and bool(spec["item_item"]) != has_item_item:
        problems.append(f"network item_item={spec['item_item']} but item_item.safetensors "
                        f"{'holds' if has_item_item else 'lacks'} item-item weights")
    encoder_keys = [k for k in state if k.startswith("encoders.")]
    for k in encoder_keys:
        if k.split(".")[1] not in spec["finetuned"]:
            problems.append(f"tensor {k!r} belongs to no fine-tuned encoder")
    if spec["finetuned"] and not encoder_keys:
        problems.append(f"no weights for the fine-tuned encoders {spec['finetuned']}")
    saved = {k: v for k, v in state.items() if not k.startswith("encoders.")}
    for k in sorted(set(expected) | set(saved)):
        if k not in saved:
            problems.append(f"tensor {k!r} is missing")
        elif k not in expected:
            problems.append(f"unexpected tensor {k!r}")
        elif (tuple(saved[k].shape), saved[k].dtype) != expected[k]:
            problems.append(f"tensor {k!r} is {saved[k].dtype} {list(saved[k].shape)}, the network "
                            f"needs {expected[k][1]} {list(expected[k][0])}")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ModelFileError(f"the weights in {str(root)!r} do not match its config.json: {shown}")


def _check_finite(state: dict[str, torch.Tensor], root: Path) -> None:
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"tensor {name!r} in {str(root)!r} holds NaN or inf values; the "
                                 "file is corrupt or was edited. Re-save the model.")


def _check_ids(ids: Any, spec: dict[str, Any], root: Path) -> tuple[IdMap, IdMap]:
    where = f"ids.json in {str(root)!r}"
    if not isinstance(ids, dict) or set(ids) != {"users", "items"} or not all(
            isinstance(v, list) for v in ids.values()):
        raise ModelFileError(f"{where} must be {{'users': [...], 'items': [...]}}")
    for kind, n in (("users", spec["n_users"]), ("items", spec["n_items"])):
        if len(ids[kind]) != n:
            raise ModelFileError(f"{where} lists {len(ids[kind])} {kind}, config.json says "
                                 f"n_{kind}={n}; re-save the model")
    try:
        return IdMap.from_list(ids["users"], kind="user"), IdMap.from_list(ids["items"], kind="item")
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{where} is invalid: {exc}") from exc


def _check_history(data: Any, root: Path) -> History | None:
    if data is None:
        return None
    try:
        if hasattr(History, "from_dict"):
            return History.from_dict(data)
        if not isinstance(data, dict):
            raise TypeError(f"expected a dict, got {type(data).__name__}")
        return History(**data)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"history.json in {str(root)!r} is invalid: {exc}") from exc


def _check_interactions(arrays: dict[str, torch.Tensor], spec: dict[str, Any],
                        root: Path) -> sp.csr_matrix:
    """CSR invariants: int64 1-D arrays, indptr from 0 to nnz, non-decreasing, indices in range."""
    where = f"interactions.safetensors in {str(root)!r}"
    if set(arrays) != {"indptr", "indices", "shape"} or any(
            t.dtype != torch.int64 or t.dim() != 1 for t in arrays.values()):
        raise ModelFileError(f"{where} must hold exactly 1-D int64 'indptr', 'indices', 'shape'")
    n_users, n_items = spec["n_users"], spec["n_items"]
    shape = tuple(arrays["shape"].tolist())
    indptr, indices = arrays["indptr"].numpy(), arrays["indices"].numpy()
    if shape != (n_users, n_items):
        raise ModelFileError(f"{where} has shape {list(shape)}, the model has "
                             f"({n_users}, {n_items})")
    if len(indptr) != n_users + 1 or indptr[0] != 0 or indptr[-1] != len(indices) or bool(
            (np.diff(indptr) < 0).any()):
        raise ModelFileError(f"{where}: the row pointers (indptr) are invalid (they must run from "
                             f"0 to {len(indices)} without decreasing, {n_users + 1} of them); "
                             "the file is corrupt or was edited")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_items):
        raise ModelFileError(f"{where}: item indices run from {int(indices.min())} to "
                             f"{int(indices.max())}, outside [0, {n_items}); the file is corrupt")
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)


def _check_encoders(configs: Any, modalities: list[str], spec: dict[str, Any], root: Path,
                    encoder_paths: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Known encoder names, dims matching the network, local paths confined or supplied."""
    from encoders.registry import get_encoder_class

    where = f"config.json in {str(root)!r}"
    if not isinstance(configs, dict) or list(configs) != list(modalities) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) for c in configs.values()):
        raise ModelFileError(f"{where}: the encoders {configs!r} must be one config with a "
                             f"'name' per modality {modalities}")
    encoder_paths = dict(encoder_paths or {})
    unknown = sorted(set(encoder_paths) - set(modalities))
    if unknown:
        raise ConfigError(f"encoder_paths names modalities {unknown} that the model does not "
                          f"have; it has {modalities}")
    out = {}
    for m, cfg in configs.items():
        try:
            get_encoder_class(cfg["name"])
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"{where}: the {m!r} encoder is {cfg['name']!r}, which is not "
                                 f"registered ({exc}); import the module that defines it "
                                 "(its @register_encoder) before loading") from exc
        dim = cfg.get("dim")
        if _is_int(dim) and dim != spec["content_dims"][m]:
            raise ModelFileError(f"{where}: the {m!r} encoder has dim={dim} but the network's "
                                 f"content_dims[{m!r}]={spec['content_dims'][m]}; re-save the model")
        out[m] = _resolve_paths(m, cfg, root, encoder_paths.get(m))
    return out


def _is_local(key: str, value: str) -> bool:
    """Whether an encoder setting names a local path rather than a hub name or plain value:
    absolute, `~`/`..`, backslashes, a slash that no hub name has, or an existing file for a
    hub-like name (which would otherwise be read from the working directory). A
    `"package:NAME/..."` reference is not: the encoder resolves it inside the installed
    package's own folder (`encoders.packaged`)."""
    if is_packaged(value):
        return False
    if os.path.isabs(value) or value.startswith(("~", "..")) or "\\" in value:
        return True
    if "/" in value:
        return not _HUB_NAME.match(value) or os.path.exists(value)
    return ("path" in key or key == "pretrained") and os.path.exists(value)


def _resolve_paths(m: str, cfg: dict[str, Any], root: Path, supplied: Any) -> dict[str, Any]:
    """Rewrite path-valued entries: "./x" → inside the folder; other local paths need `supplied`."""
    out, local = dict(cfg), []
    for key, value in cfg.items():
        if key == "name" or not isinstance(value, str):
            continue
        if value.startswith("./"):
            path = safe_child(root, value[2:])
            if not path.exists():
                raise ModelFileError(f"the {m!r} encoder's {key}={value!r} is missing from "
                                     f"{str(root)!r}")
            out[key] = str(path)
        elif _is_local(key, value):
            local.append(key)
    if supplied is not None:
        keys = local or [k for k in cfg if k.endswith("path") and k != "name"]
        if len(keys) != 1:
            raise ConfigError(f"encoder_paths[{m!r}] given, but the saved {m!r} encoder config "
                              f"{cfg!r} has no single path setting to replace")
        path = os.path.abspath(os.fspath(supplied))
        if not os.path.exists(path):
            raise ConfigError(f"encoder_paths[{m!r}]={os.fspath(supplied)!r} does not exist")
        out[keys[0]] = path
    elif local:
        raise ModelFileError(
            f"the {m!r} encoder's {local[0]}={cfg[local[0]]!r} is a local path outside the model "
            f"folder {str(root)!r}; loading never reads outside the folder. Pass "
            f"encoder_paths={{{m!r}: '/path/to/that/model'}}, or copy it into the model folder "
            "before saving.")
    return out
