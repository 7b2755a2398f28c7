"""Growing a fitted model: new items from content (cold), new users from their history.

Functions over a fitted `MultimodalRecommender` (`model`); the facade's `add_items`,
`add_users` and `encoder` call them. `add_items` is all or nothing: every modality is
encoded first, and only then is the catalogue changed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from encoders import Encoder

from .content import encode_content
from .errors import ConfigError, DataError
from .idmap import IdMap
from .neighbours import centred_rows, content_centre
from .scoring import binary
from .validate import check_content_table, check_id_list

__all__ = ["add_items", "add_users", "encoder", "history_matrix", "ids_with_pad", "resize"]


def encoder(model: Any, modality: str) -> Encoder:
    """The encoder of `modality`, built from its saved config on first use."""
    if modality not in model.modalities_:
        raise ConfigError(f"the model has no {modality!r} encoder; it has {model.modalities_}")
    if modality not in model.encoders_:
        enc = Encoder.from_config(model.encoder_configs_[modality])
        want = model.network.config.content_dims[modality]
        if enc.dim != want:
            raise ConfigError(f"the {modality!r} encoder built from the saved config gives "
                              f"{enc.dim}-d vectors but the model was trained on {want}-d ones; "
                              "pass the same encoder (encoder_paths=...) when loading")
        model.encoders_[modality] = enc
    return model.encoders_[modality]


def add_items(model: Any, content: Mapping[str, Mapping[Any, Any]]) -> np.ndarray:
    """Add or update items from `{modality: {item_id: raw}}`; returns their indices."""
    content = check_content_table(content, model.modalities_)
    ids = list(dict.fromkeys(i for table in content.values() for i in table))
    encoded = {}
    for m, table in content.items():  # encode everything before changing anything
        raw = [table.get(i) for i in ids]
        vecs, has = encode_content(encoder(model, m), raw, batch_size=model.encode_batch_size,
                                   cache=model.cache_dir, show_progress=False, modality=m)
        encoded[m] = (vecs, has)
    if not any(bool(has.any()) for _, has in encoded.values()):
        raise DataError(f"add_items() got no content for items {ids[:5]}: every value is missing "
                        "(None); give at least one modality's content per item")
    empty = [i for n, i in enumerate(ids) if not any(bool(h[n]) for _, h in encoded.values())]
    if empty:
        raise DataError(f"add_items(): item {empty[0]!r} has no content in any modality (all None); "
                        "an item needs content to be scored")
    net = model.network
    centres = {m: content_centre(getattr(net, f"content_{m}"), getattr(net, f"has_{m}"))
               for m in encoded if m in net.content_slices}  # before the new rows count
    idx = model.item_map_.extend(ids)
    net.grow(n_items=len(model.item_map_))
    model.user_items_ = resize(model.user_items_, model.user_items_.shape[0], len(model.item_map_))
    if model.item_item_ is not None:
        model.item_item_ = _pad_item_item(model.item_item_, len(model.item_map_))
        model.scorer_.item_item = model.item_item_
    rows = torch.from_numpy(idx)
    with torch.no_grad():
        for m, (vecs, has) in encoded.items():
            getattr(net, f"content_{m}")[rows[has]] = vecs[has].to(model.device)
            getattr(net, f"has_{m}")[rows[has]] = True
            if m in centres:  # their content-neighbour vectors, as `fit` made the others'
                cols = net.content_slices[m]
                net.content_basis[rows[has], cols] = torch.from_numpy(
                    centred_rows(vecs[has], centres[m])).to(model.device)
    model.scorer_.invalidate()
    if model.index_ is not None:
        warnings.warn("add_items() changed the catalogue, so the item index was dropped and "
                      "recommend() scores every item exactly; call build_index() again",
                      stacklevel=3)
        model.index_ = None
    return idx


def add_users(model: Any, interactions: Mapping[Any, Sequence[Any]] | pd.DataFrame) -> np.ndarray:
    """Add users (or extend histories); returns their indices."""
    if isinstance(interactions, pd.DataFrame):
        for col in ("user", "item"):
            if col not in interactions.columns:
                raise DataError(f"add_users() DataFrame needs a {col!r} column, has "
                                f"{list(interactions.columns)}")
        interactions = interactions.groupby("user", sort=False)["item"].apply(list).to_dict()
    if not isinstance(interactions, Mapping) or not interactions:
        raise DataError("add_users() needs {user_id: [item_ids]} with at least one user, got "
                        f"{interactions!r}")
    users = list(interactions)
    bag = history_matrix(model, [interactions[u] for u in users])
    idx = model.user_map_.extend(users)
    model.network.grow(n_users=len(model.user_map_))
    ui = resize(model.user_items_, len(model.user_map_), model.user_items_.shape[1]).tolil()
    for r, u in enumerate(idx):
        ui[u] = binary(ui[u].tocsr() + bag[r])
    model.user_items_ = ui.tocsr()
    return idx


def history_matrix(model: Any, histories: Sequence[Sequence[Any]]) -> sp.csr_matrix:  # (B, n)
    """Binary rows over the catalogue from lists of raw item IDs."""
    rows, cols = [], []
    for r, items in enumerate(histories):
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence | np.ndarray):
            raise DataError(f"history must map each user to a list of item IDs, got {items!r}")
        items = check_id_list(items, "history items")
        idx = model.item_map_.index(list(items)) if len(items) else np.zeros(0, np.int64)
        rows += [r] * len(idx)
        cols += list(idx)
    return binary(sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                shape=(len(histories), model.network.n_items)))


def ids_with_pad(idmap: IdMap, idx: np.ndarray) -> np.ndarray:
    """Raw IDs for indices, None where the index is -1 (padding)."""
    ids = idmap.ids(np.maximum(idx, 0))
    if (idx < 0).any():
        ids = ids.astype(object)
        ids[idx < 0] = None
    return ids


def _pad_item_item(ii: Any, n: int) -> Any:
    """The same item-item weights over a catalogue grown to `n` items (new items: none)."""
    from dataclasses import replace

    w = ii.weights
    if isinstance(w, np.ndarray):
        grown = np.zeros((n, n), np.float32)
        grown[: w.shape[0], : w.shape[1]] = w
    else:
        grown = resize(w.tocsr(), n, n)
    return replace(ii, weights=grown, _csc=None)


def resize(x: sp.csr_matrix, n_rows: int, n_cols: int) -> sp.csr_matrix:
    coo = x.tocoo()
    return sp.csr_matrix((coo.data, (coo.row, coo.col)), shape=(n_rows, n_cols), dtype=np.float32)
