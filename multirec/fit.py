"""The fit recipe, as named stages over one `FitRun`, readable top to bottom.

    holdout   split off validation interactions (early stopping, λ, post-hoc steps)
    encode    item content → frozen embedding tables (+ presence masks), through encoders
    carve     with `refit`: a few users held out as new ones, to choose how users the model
              does not know are served (`uservalid`); with a cold path (content or item side
              features): a few warm items held out as new ones, to select the epoch on
              cold-item validation too (`coldvalid`)
    cf        LightFM factors on the training part (side features when the data has them)
    build     NetworkConfig → TwoTowerNetwork, frozen inputs copied in
    item_item EASE weights (dense, or sparse neighbourhood EASE above the dense limit)
    train     the towers (`multirec.training`), early stopping on validation NDCG
    posthoc   on validation only: the item-item weight, how cold items are scored (on the
              item carve), the popularity prior for short histories and new users' item-item
              damping (on the user carve), probability calibration
    retrain   (`refit=True`, the default) LightFM and the towers again, on all interactions
              (train + validation, carved items included) for the chosen number of epochs,
              keeping the post-hoc settings (measured: ml-100k warm NDCG +0.003, cold-item
              +0.009, +0.046 with tags; long-tail cold-item +0.001 to +0.010); above 10,000
              items (`refit_warm_start`) it continues the validation model for a quarter of
              the epochs instead of starting again
    refit     item-item weights and item popularity on all interactions (train + validation)
    fold_in   items with no training interactions but some in validation (the carved ones
              among them) get their ID residual and bias from all their interactions

`run_fit(params, data, valid, callbacks)` runs them under the configured thread count and
returns a `Fitted` (what the model keeps); `MultimodalRecommender.fit` is a thin wrapper.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from encoders import Encoder

from . import itemitem
from .coldvalid import ColdCarve, carve_items, fold_in_items
from .config import ModelConfig, NetworkConfig, resolve_negatives, resolve_threads, resolve_warm_start
from .content import encode_content, resolve_encoders
from .data import InteractionData
from .errors import ConfigError, DataError
from .history import History
from .idmap import IdMap
from .neighbours import content_basis
from .network import TwoTowerNetwork
from .posthoc import calibrate, carry_over, tune_cold_items, tune_item_item_scale
from .prior import set_item_prior, tune_prior
from .scoring import binary
from .training import Callback, train_network
from .uservalid import UserCarve, arrival_order, carve_users

__all__ = ["Fitted", "FitRun", "run_fit", "thread_limit", "holdout_split", "DEFAULT_II_HALFLIFE"]

DEFAULT_II_HALFLIFE = 20.0  # κ_ii where the prior is on and no carved new users choose it


@dataclass
class Fitted:
    """Everything a fitted model holds (attributes ending in `_` on the model)."""

    network: TwoTowerNetwork
    item_item: itemitem.ItemItemWeights | None
    user_items: sp.csr_matrix  # (n_users, n_items) binary: train + validation interactions
    user_map: IdMap
    item_map: IdMap
    encoders: dict[str, Encoder]
    encoder_configs: dict[str, dict[str, Any]]
    history: History
    fit_config: dict[str, Any]  # resolved data-dependent settings (negatives, threads, ...)


@dataclass
class FitRun:
    """The state the stages pass along (inputs first, then what each stage produces)."""

    params: ModelConfig
    data: InteractionData
    valid: InteractionData | None
    callbacks: Sequence[Callback] = ()
    full: sp.csr_matrix | None = None
    train_x: sp.csr_matrix | None = None
    valid_x: sp.csr_matrix | None = None
    encoders: dict[str, Encoder] = field(default_factory=dict)
    content: dict[str, torch.Tensor] = field(default_factory=dict)
    has: dict[str, torch.Tensor] = field(default_factory=dict)
    cf_user: torch.Tensor | None = None
    cf_item: torch.Tensor | None = None
    cf_from_features: torch.Tensor | bool = False  # (n_items,) items whose factor needs no history
    cf_item_cold: torch.Tensor | None = None  # (n_items, k) factor from side features alone (NaN: none)
    lfm: Any = None  # the fitted `LightFMFactors` (continued by a warm-started refit)
    carve: ColdCarve | None = None
    user_carve: UserCarve | None = None  # users held out as new ones (`multirec.uservalid`)
    # the towers' weights as trained, before the post-hoc steps (a warm-started refit's start)
    trained: dict[str, torch.Tensor] | None = None
    # content-neighbour vectors (n_items, R) and their {source: width}; None until `build`
    knn_basis: tuple[np.ndarray, dict[str, int]] | None = None
    net: TwoTowerNetwork | None = None
    item_item: itemitem.ItemItemWeights | None = None
    history: History | None = None
    resolved: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- the recipe
def run_fit(params: ModelConfig, data: InteractionData, valid: InteractionData | None = None,
            callbacks: Sequence[Callback] = (),
            on_built: Callable[[TwoTowerNetwork], None] | None = None) -> Fitted:
    """Run every stage of the recipe; returns what the model keeps. `on_built(net)` is
    called once the network exists (so callbacks can look at the weights as they train)."""
    cfg = params.train
    run = FitRun(params, data, valid, callbacks)
    threads = resolve_threads(cfg.num_threads)
    run.resolved = {"num_threads": threads,
                    "negatives": resolve_negatives(cfg.negatives, data.n_items),
                    "refit_warm_start": resolve_warm_start(cfg.refit_warm_start, data.n_items)}
    with thread_limit(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # seeded, without touching the caller's RNG
        seconds = run.resolved["stage_seconds"] = {}
        for stage in (holdout, encode, carve, collaborative, build, item_item, train, posthoc,
                      retrain, refit, fold_in):
            t0 = time.perf_counter()
            stage(run)
            seconds[stage.__name__] = time.perf_counter() - t0
            if stage is build and on_built is not None:
                on_built(run.net)
    return Fitted(
        network=run.net, item_item=run.item_item, user_items=run.full,
        user_map=data.users.copy(), item_map=data.items.copy(), encoders=run.encoders,
        encoder_configs={m: e.to_config() for m, e in run.encoders.items()},
        history=run.history, fit_config=run.resolved)


def holdout(run: FitRun) -> None:
    """`train_x`, `valid_x` (or None) and `full` = train ∪ valid, all binary CSR."""
    cfg, data, valid = run.params.train, run.data, run.valid
    full = binary(data.to_csr())
    if valid is not None:
        if valid.items != data.items or valid.users != data.users:
            raise DataError("valid must share the ID maps of data (make it with multirec.splits)")
        run.train_x, run.valid_x = full, binary(valid.to_csr())
        full = binary(full + run.valid_x)
    elif cfg.valid_fraction > 0:
        run.train_x, run.valid_x = holdout_split(full, cfg.valid_fraction, cfg.seed)
    else:
        run.train_x, run.valid_x = full, None
    if run.valid_x is not None and run.valid_x.nnz == 0:
        run.valid_x = None
    run.full = full


def encode(run: FitRun) -> None:
    """Resolve the encoders and embed every item's content (cached, batched)."""
    p, data = run.params, run.data
    run.encoders = resolve_encoders(p.encoders)
    missing = [m for m in run.encoders if m not in data.content]
    if missing:
        raise DataError(f"encoders given for modalities {missing} but the data has content for "
                        f"{data.modalities}; pass item_content={{{missing[0]!r}: ...}} to the data")
    unused = [m for m in data.content if m not in run.encoders]
    if unused and run.encoders:  # no encoders at all: collaborative filtering, on purpose
        warnings.warn(f"the data has content for {unused} but no encoder is given for it, so it "
                      f"is not used; pass encoders={{{unused[0]!r}: ...}}", stacklevel=4)
    report: dict[str, list[Any]] = {}
    for m, enc in run.encoders.items():
        if hasattr(enc, "fit_vocabulary") and not getattr(enc, "fitted", False):  # learn a vocabulary
            enc.fit_vocabulary([x for x in data.content[m] if x is not None])
        failed: list[int] = []
        run.content[m], run.has[m] = encode_content(
            enc, data.content[m], batch_size=p.encode_batch_size, cache=p.cache_dir,
            show_progress=p.train.show_progress, modality=m, on_error=p.on_error, failed=failed,
            ids=data.items.to_list())
        if failed:
            report[m] = list(data.items.ids(np.asarray(failed)))
    if report:
        total = sum(len(v) for v in report.values())
        warnings.warn(f"{total} item(s) had unreadable content and are treated as missing that "
                      f"modality ({ {m: len(v) for m, v in report.items()} }); the item IDs are in "
                      "model.content_report_", stacklevel=4)
    run.resolved["content_report"] = report


def carve(run: FitRun) -> None:
    """Hold a few users out as new ones (`carve_users`, for the new-user settings), then a
    few warm items (cold validation) when the model can serve new items at all: from
    content, or from item side features through LightFM."""
    cfg, data = run.params.train, run.data
    if run.valid_x is None:
        return
    if cfg.refit and cfg.popularity_prior and cfg.new_user_valid_users > 0:
        run.train_x, run.valid_x, run.user_carve = carve_users(
            run.train_x, run.valid_x, _arrival_order(run), cfg.new_user_valid_users, cfg.seed)
        if run.user_carve is not None:
            run.resolved["new_user_valid_users"] = int(run.user_carve.users.size)
    if cfg.cold_valid_items <= 0:
        return
    eligible = np.zeros(data.n_items, dtype=bool)
    for has in run.has.values():
        eligible |= has.cpu().numpy()
    if run.params.cf is not None and run.params.cf.use_item_features and data.item_features is not None:
        eligible |= _with_side_features(data)
    run.train_x, run.valid_x, run.carve = carve_items(
        run.train_x, run.valid_x, eligible, cfg.cold_valid_items, cfg.seed)
    if run.carve is not None:
        run.resolved["cold_valid_items"] = int(run.carve.items.size)


def collaborative(run: FitRun) -> None:
    """LightFM user/item factors from the training part (None without CF)."""
    cf_cfg = run.params.cf
    if cf_cfg is None:
        return
    from .cf import LightFMFactors

    run.lfm = LightFMFactors(cf_cfg).fit(
        run.train_x, show_progress=run.params.train.show_progress,
        user_features=run.data.user_features, item_features=run.data.item_features)
    _take_factors(run)


def _take_factors(run: FitRun) -> None:
    """The LightFM factors of `run.lfm` as the network's frozen CF inputs."""
    lfm = run.lfm
    if lfm.item_features_ is not None:  # hybrid: items with side features have a factor too
        run.cf_from_features = torch.from_numpy(_with_side_features(run.data))
        run.cf_item_cold = torch.from_numpy(lfm.item_cold_factors_)
    run.cf_user = torch.from_numpy(np.asarray(lfm.user_factors_, np.float32))
    run.cf_item = torch.from_numpy(np.asarray(lfm.item_factors_, np.float32))


def build(run: FitRun) -> None:
    """The network from its config, with the frozen inputs copied in."""
    p, data = run.params, run.data
    live = {m: e for m, e in run.encoders.items() if _is_trainable(e)}
    use_ii = _use_item_item(p.item_item)
    if run.knn_basis is None:
        run.knn_basis = _content_basis(run, live)
    basis, widths = run.knn_basis
    config = NetworkConfig(
        n_users=data.n_users, n_items=data.n_items,
        content_dims={m: e.dim for m, e in run.encoders.items()},
        cf_dim=0 if run.cf_item is None else int(run.cf_item.shape[1]), dim=p.dim,
        fusion=p.fusion, use_id_embeddings=p.use_id_embeddings, use_user_cf=p.use_user_cf,
        item_item=use_ii, finetuned=list(live), content_neighbours=widths)
    net = TwoTowerNetwork(config)
    with torch.no_grad():
        net.content_basis.copy_(torch.from_numpy(basis))
        for m in run.content:
            getattr(net, f"content_{m}").copy_(run.content[m])
            getattr(net, f"has_{m}").copy_(run.has[m])
        if run.cf_item is not None:
            scale = _mean_norm(run.cf_item)  # LightFM's scale depends on lr and epochs
            net.cf_item.copy_(run.cf_item / scale)
            net.cf_user.copy_(run.cf_user / _mean_norm(run.cf_user))
            if run.cf_item_cold is not None:  # used in training only (items made to look cold)
                net.cf_item_cold = run.cf_item_cold / scale
        warm = torch.from_numpy(np.diff(run.train_x.tocsc().indptr) > 0)
        net.warm_item.copy_(warm)
        net.has_cf.copy_(warm | run.cf_from_features if run.cf_item is not None else warm)
        net.warm_user.copy_(torch.from_numpy(np.diff(run.train_x.indptr) > 0))
    if live:
        net.attach_encoders(live, {m: list(data.content[m]) for m in live},
                            batch_size=p.encode_batch_size)
        if run.resolved["negatives"] == "all" and data.n_items > 5000:
            warnings.warn(
                f"fine-tuning {sorted(live)} with negatives='all' runs the encoder over all "
                f"{data.n_items} items every step; pass negatives=256 (or similar) to sample",
                stacklevel=4)
    run.net = net


def item_item(run: FitRun) -> None:
    """EASE weights from the training part; λ chosen on validation unless given."""
    if not run.net.use_item_item:
        return
    p = run.params
    run.item_item = itemitem.fit_item_item(
        run.train_x, run.valid_x, l2=p.item_item_l2, max_valid_users=p.train.max_valid_users,
        seed=p.train.seed, k=p.train.k, dropout=p.item_item_dropout)
    run.resolved["item_item"] = {"kind": run.item_item.kind, "l2": run.item_item.l2,
                                 "neighbours": run.item_item.neighbours,
                                 "dropout": run.item_item.dropout}


def train(run: FitRun) -> None:
    """Train the towers (early stopping on validation NDCG; best weights restored)."""
    cfg = run.params.train  # train_network resolves negatives="auto" by the same rule
    run.history = train_network(run.net, run.train_x, run.valid_x, cfg, run.callbacks,
                                item_item=run.item_item, carve=run.carve)
    if cfg.refit and run.valid_x is not None and run.resolved["refit_warm_start"] > 0:
        run.trained = {n: p.detach().clone() for n, p in run.net.named_parameters()}
    run.net.cf_item_cold = None  # training only
    if run.net.finetuned:
        run.net.refresh_content()  # the buffers serve scoring with the fine-tuned weights


def posthoc(run: FitRun) -> None:
    """Validation-only steps: the item-item weight, then calibration (W from train only)."""
    if run.valid_x is None or run.history.interrupted:
        return
    cfg = run.params.train
    ii = None if run.item_item is None else itemitem.CachedScores(run.item_item)  # W is frozen
    if run.item_item is not None:
        run.history.item_item_scale = tune_item_item_scale(
            run.net, run.train_x, run.valid_x, ii, k=cfg.k,
            max_users=cfg.max_valid_users, seed=cfg.seed)
    if run.carve is not None:
        run.resolved.update(tune_cold_items(
            run.net, run.train_x, run.valid_x, run.carve, ii, k=cfg.k,
            max_users=cfg.max_valid_users, seed=cfg.seed))
    if cfg.popularity_prior:
        fixed = cfg.new_user_item_item_halflife != "auto"
        carved = None if fixed else run.user_carve  # κ_ii chosen with the prior on the carve
        run.resolved.update(tune_prior(run.net, run.train_x, run.valid_x, ii, new_users=carved,
                                       k=cfg.k, max_users=cfg.max_valid_users, seed=cfg.seed))
        if carved is None:
            # Without carved new users, the term is weighted down only where the prior is on
            # (the damping hands short histories over to it), κ_ii fixed. The simulated users
            # (validation users' own training items) misjudge it. Measured on ml-100k cold
            # users (benchmark split seed 0, CF-only, NDCG@10 at 3 interactions): no damping
            # 0.350; prior tuned with the damping on 0.305 (the simulated users turned it
            # off); prior tuned without it, then κ_ii = 20: 0.381. Long-tail generator
            # (prior off, 2 seeds): damping anyway cost 0.015 at one interaction.
            kappa = (float(cfg.new_user_item_item_halflife) if fixed else DEFAULT_II_HALFLIFE)
            kappa = kappa if run.resolved["prior_weight"] > 0 else 0.0
            with torch.no_grad():
                run.net.new_user_ii_halflife.fill_(kappa)
            run.resolved["new_user_ii_halflife"] = kappa
    calibrate(run.net, run.train_x, run.valid_x, ii, max_users=cfg.max_valid_users, seed=cfg.seed)


def retrain(run: FitRun) -> None:
    """With `refit=True`: LightFM, the item-item weights and the towers again on all
    interactions, for the epochs validation chose, then the post-hoc settings carried over
    (`posthoc.carry_over`). The validation pairs and the carved items are the freshest
    signal there is; without this they only reach the model through fold-in and the
    item-item refit. Fine-tuned encoders continue from their trained weights (measured on
    ml-100k cold items with the tags encoder: NDCG@10 0.227 → 0.272). Skipped without
    validation and after an interrupt."""
    cfg, old = run.params.train, run.net
    if (not cfg.refit or run.valid_x is None or run.history.interrupted
            or run.history.best_epoch < 0):
        return
    t0 = time.perf_counter()
    epochs = run.history.best_epoch + 1
    run.train_x, run.carve = run.full, None
    share = run.resolved["refit_warm_start"]
    warm = run.trained is not None  # taken by `train` exactly when share > 0
    if warm:
        epochs = max(1, round(share * epochs))
        if run.lfm is not None:
            run.lfm.fit_more(run.full, max(1, round(share * run.lfm.config.epochs)),
                             show_progress=cfg.show_progress)
            _take_factors(run)
    else:
        collaborative(run)
    build(run)
    if warm:
        _continue_from(run.net, run.trained)
        run.trained = None
    if run.item_item is not None:
        run.item_item = run.item_item.refit(run.full)
    again = dataclasses.replace(cfg, epochs=epochs, checkpoint_dir=None, checkpoint_every=0,
                                resume=False)
    train_network(run.net, run.full, None, again, item_item=run.item_item, desc="refit")
    run.net.cf_item_cold = None  # training only
    if run.net.finetuned:
        run.net.refresh_content()
    carry_over(old, run.net, item_item_scale=run.history.item_item_scale,
               cold_shift=float(run.resolved.get("cold_shift", 0.0)))
    run.resolved.update(refit_epochs=epochs, refit_seconds=time.perf_counter() - t0)


def refit(run: FitRun) -> None:
    """Item-item weights and the popularity prior on all interactions, once validation has
    had its say."""
    set_item_prior(run.net, run.full)
    if run.item_item is not None and run.full.nnz != run.train_x.nnz:
        run.item_item = run.item_item.refit(run.full)


def fold_in(run: FitRun) -> None:
    """Items with interactions but none in training (carved, or only in validation) become
    warm: ID residual and bias from all their interactions, the rest frozen."""
    if run.history.interrupted:
        return
    seen = np.diff(run.full.tocsc().indptr) > 0
    todo = np.flatnonzero(seen & ~run.net.warm_item.cpu().numpy())
    if todo.size and not run.net.use_id_embeddings:  # no per-item weights: warm = item-item term
        run.net.warm_item[torch.from_numpy(todo)] = True
    elif todo.size:
        fold_in_items(run.net, run.full, todo, item_item=run.item_item,
                      neg_weight=run.params.train.neg_weight, seed=run.params.train.seed)
        run.resolved["folded_in_items"] = int(todo.size)


# ---------------------------------------------------------------------- helpers
def _continue_from(net: TwoTowerNetwork, trained: dict[str, torch.Tensor]) -> None:
    """Start `net` (built again, with new frozen inputs) from the weights the validation
    run trained (every parameter of the same name and shape; buffers stay `net`'s own)."""
    with torch.no_grad():
        for name, param in net.named_parameters():
            start = trained.get(name)
            if start is not None and start.shape == param.shape:
                param.copy_(start)


def _content_basis(run: FitRun, live: dict[str, Encoder]) -> tuple[np.ndarray, dict[str, int]]:
    """Content-neighbour vectors (`multirec.neighbours`) from the item side features and the
    frozen modalities (a fine-tuned encoder's vectors change while it trains: not used);
    none with `content_neighbours=False` or without a cold path (no carve to weigh them on)."""
    p, data = run.params, run.data
    if not p.train.content_neighbours or p.train.cold_valid_items <= 0:
        return np.zeros((data.n_items, 0), np.float32), {}
    features = None if data.item_features is None else data.item_features.matrix
    content = {m: (run.content[m], run.has[m]) for m in run.content if m not in live}
    return content_basis(data.n_items, features, content, seed=p.train.seed)


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run the block with `n` torch threads and `n` BLAS threads, then restore both."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # BLAS threads stay as they are
        blas: Any = contextlib.nullcontext()
    else:
        blas = threadpool_limits(limits=n)
    try:
        with blas:
            yield
    finally:
        torch.set_num_threads(before)


def holdout_split(x: sp.csr_matrix, fraction: float, seed: int
                  ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Random split of interactions; every user keeps at least one training interaction."""
    coo = x.tocoo()
    rng = np.random.default_rng(seed)
    held = rng.random(coo.nnz) < fraction
    order = rng.permutation(coo.nnz)  # keep the first (random) interaction of each user
    _, first = np.unique(coo.row[order], return_index=True)
    held[order[first]] = False
    shape = x.shape
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=shape)
    valid = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=shape)
    return train, valid


def _arrival_order(run: FitRun) -> sp.csr_matrix:  # (n_users, n_items) arrival ranks
    """When each interaction of `data` (and of `valid`) came, as `uservalid.arrival_order`
    ranks: by timestamp where every part has them, else in a seeded random order."""
    parts = [run.data] + ([run.valid] if run.valid is not None else [])
    timed = all(p.timestamps is not None for p in parts)
    return arrival_order(
        np.concatenate([p.user_index for p in parts]), np.concatenate([p.item_index for p in parts]),
        np.concatenate([p.timestamps for p in parts]) if timed else None,
        (run.data.n_users, run.data.n_items), run.params.train.seed)


def _use_item_item(setting: bool | str) -> bool:
    if setting not in (True, False, "auto"):
        raise ConfigError(f"item_item must be True, False or 'auto', got {setting!r}")
    return bool(setting)  # "auto": on at any size (sparse above itemitem.DENSE_MAX_ITEMS)


def _with_side_features(data: InteractionData) -> np.ndarray:  # (n_items,) bool
    """Items with at least one side feature (their LightFM factor needs no interactions)."""
    return np.diff(sp.csr_matrix(data.item_features.matrix).indptr) > 0


def _mean_norm(x: torch.Tensor) -> torch.Tensor:
    """Average row norm (factors are divided by it: unit average norm)."""
    return x.norm(dim=1).mean().clamp(min=1e-8)


def _is_trainable(enc: Encoder) -> bool:
    """Whether `enc` has trainable weights (then it is fine-tuned end to end in `fit`)."""
    return any(p.requires_grad for p in enc.parameters())
