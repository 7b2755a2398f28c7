"""One readable training loop for `TwoTowerNetwork`.

Each step takes a batch of users and a pool of candidate items: the whole catalogue
(`negatives="all"`, exact; the default up to `config.ALL_NEGATIVES_MAX_ITEMS` items) or the
batch's positives plus `negatives=K` items sampled uniformly and shared by the batch. Items
without training interactions only train the prior of new items (`cold_bias`), never their
content path (they are unknown, not disliked). The
loss is binary cross-entropy on observed pairs (label 1) and non-observed pairs (label 0,
weight `neg_weight`); with sampled negatives each sampled non-observed pair is weighted by
n_items / K, so the loss is an unbiased estimate of the full-catalogue loss; only the cells
that carry loss are scored (each user's positives and the K shared negatives), so a step
costs O(batch × (positives + K)), independent of the catalogue size. BPR (one sampled
negative per positive) is an option. The user's history is the model input (as a sparse
bag, with dropout on its entries, like a denoising autoencoder) and the targets.

Validation NDCG@k on held-out interactions (at most `max_valid_users` sampled users, one
ranking kernel: `multirec.ranking`) drives early stopping; the best weights are restored at
the end, after a NaN loss (with an error), and after Ctrl-C.

Checkpoints (`checkpoint_dir`, `checkpoint_every`, `resume`; see `multirec.checkpoint`) hold
everything the loop depends on — weights, optimizer state, RNG states, History — so a resumed
run ends with the same weights as an uninterrupted one.

Under `torchrun` (see `multirec.distributed`) the step runs through
`DistributedDataParallel(net)`: each rank takes every world_size-th user of a shared random
order (`batch_size` users per rank and step), gradients are averaged by DDP, validation is
sharded and all-reduced, so all ranks stop together and end with identical weights.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from . import distributed
from .checkpoint import Checkpoint, check_fingerprint, fingerprint, load_checkpoint, save_checkpoint
from .config import TrainConfig, resolve_negatives, resolve_sparse_updates
from .errors import ConfigError, TrainingDivergedError
from .history import History
from .itemitem import CachedScores
from .network import TrainCells, sparse_bag
from .optim import adam_with_sparse, weighted_bce_sum
from .ranking import ndcg_at_k, sample_target_rows
from .scoring import iter_logits

__all__ = ["TrainConfig", "Callback", "train_network", "History", "validation_ndcg"]

Callback = Callable[[int, dict[str, float]], bool | None]
"""Called after every epoch as `callback(epoch, logs)`; return True to stop training."""


def _drop_probs(net: Any, cfg: TrainConfig, device: torch.device) -> torch.Tensor:  # (S+1,)
    probs = [cfg.modality_dropout] * len(net.source_names) + [cfg.id_dropout]
    return torch.tensor(probs, device=device)


def validation_ndcg(net: Any, inputs: sp.csr_matrix, target: sp.csr_matrix, k: int,
                    device: torch.device | None = None, *, item_item: Any = None,
                    max_users: int = 2000, seed: int = 0,
                    shard: tuple[int, int] = (0, 1), columns: np.ndarray | None = None) -> float:
    """Mean NDCG@k of `target` rows ranked from `inputs` (input items masked), over at most
    `max_users` sampled users; the same ranking kernel and tie rule as `evaluate`. With
    `columns` each user ranks only those items (cold-item validation on a carve).

    With `shard=(rank, world_size)` each process scores every `world_size`-th user and the
    sums are all-reduced, so all ranks get the same value (and the same early stopping).
    """
    rank, world = shard
    users = sample_target_rows(target, max_users, seed)
    if users.size == 0:
        return float("nan")
    total, n = 0.0, 0
    for u, logits in iter_logits(net, inputs, users[rank::world], item_item, columns=columns):
        t_u, in_u = target[u], inputs[u]
        if columns is not None:
            t_u, in_u = t_u[:, columns], in_u[:, columns]
        t, c = ndcg_at_k(logits.cpu().numpy(), t_u, k, exclude=in_u)
        total, n = total + t, n + c
    if world > 1:
        dev = device or net.global_bias.device
        total, n = distributed.all_reduce_sum([total, n], dev)
    return float(total / max(n, 1))


@dataclass
class _Run:
    """What the steps of one training run share (built once by `_make_run`)."""

    net: Any  # the network; its weights are the model's
    model: Any  # `net`, or `DistributedDataParallel(net)` under DDP (the step goes through it)
    opt: Any  # torch.optim.Optimizer, or `optim.OptimizerGroup` with lazy Adam for the ID tables
    X: sp.csr_matrix  # (n_users, n_items) binary training interactions
    users: np.ndarray  # users with at least one training interaction
    cfg: TrainConfig
    device: torch.device
    drop_p: torch.Tensor  # (S + 1,) modality / ID-residual dropout probabilities
    rng: np.random.Generator  # same stream on every rank: user order, sampled negatives
    gen: torch.Generator  # this rank's stream: input and user-CF dropout, BPR negatives
    negatives: int | str = "all"  # resolved: "all" or K sampled items per step
    item_item: Any = None  # frozen item-item weights (`multirec.itemitem`) or None
    valid_item_item: Any = None  # the same, remembering the validation rows' scores
    carve: Any = None  # `multirec.coldvalid.ColdCarve`: items held out as new ones, or None
    warm: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (n_items,) trained on
    rank: int = 0
    world: int = 1
    sparse_tables: list[Any] = field(default_factory=list)  # ID tables with sparse gradients


@dataclass
class _State:
    """What changes from epoch to epoch (and what a checkpoint stores besides the weights)."""

    history: History
    best: dict[str, torch.Tensor]  # parameters of the best evaluation so far
    last_good: dict[str, torch.Tensor]  # parameters at the last evaluation (restored on NaN)
    bad_evals: int = 0  # evaluations without improvement
    epoch: int = 0  # epochs completed


def train_network(
    net: Any,
    interactions: sp.csr_matrix,  # (n_users, n_items) training pairs (binary)
    valid: sp.csr_matrix | None,  # (n_users, n_items) held-out pairs for early stopping
    cfg: TrainConfig,
    callbacks: Sequence[Callback] = (),
    *,
    item_item: Any = None,
    carve: Any = None,
    desc: str = "train",
) -> History:
    """Train `net` in place; returns the History. Restores the best weights seen.

    With `carve` (a `multirec.coldvalid.ColdCarve`: items held out of `interactions` as new
    ones) each evaluation also ranks the carved items for their users, and the epoch is
    selected by warm + cold validation NDCG, so the content path is trained, not skipped.

    With `cfg.checkpoint_every` a checkpoint is written every that many epochs (and at the
    end); with `cfg.resume` training continues from it, giving the same weights as a run that
    was never interrupted. Under DDP call this on every rank with the same arguments.
    Without `valid` every epoch of `cfg.epochs` runs and the last weights are kept. `desc`
    labels the progress bar.
    """
    run = _make_run(net, interactions, cfg, item_item, carve)
    try:
        return _train(run, interactions, valid, callbacks, desc)
    finally:
        for t in run.sparse_tables:  # dense gradients again for every other use of the net
            t.sparse = False


def _train(run: _Run, interactions: sp.csr_matrix, valid: sp.csr_matrix | None,
           callbacks: Sequence[Callback], desc: str) -> History:
    """The epochs of `train_network` (run set up), with checkpoints, early stopping, Ctrl-C."""
    from tqdm.auto import tqdm

    net, cfg = run.net, run.cfg
    snap = _snapshot(net)
    state = _State(History(), best=snap, last_good=snap)
    fp = None
    if cfg.checkpoint_dir is not None:
        fp = fingerprint(net, cfg.to_dict(), interactions, valid)
        if cfg.resume:
            state = _resume(run, fp) or state
    history, seconds0, t0 = state.history, state.history.seconds, time.perf_counter()
    todo = range(0) if history.stopped_early else range(state.epoch, cfg.epochs)
    bar = tqdm(todo, disable=not cfg.show_progress or run.rank != 0, desc=desc, unit="epoch",
               initial=state.epoch, total=cfg.epochs)
    try:
        for epoch in bar:
            logs = {"epoch": epoch, "loss": _train_epoch(run, state, epoch)}
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                _evaluate(run, valid, state, epoch, logs)
            history.epochs.append(logs)
            bar.set_postfix({k: round(v, 4) for k, v in logs.items() if k != "epoch"})
            stop = _any_rank(run, any(cb(epoch, logs) for cb in callbacks))
            history.stopped_early = state.bad_evals >= cfg.patience or stop
            history.seconds = seconds0 + time.perf_counter() - t0
            state.epoch = epoch + 1
            if fp is not None and _checkpoint_due(cfg, state):
                _save(run, state, fp)
            if history.stopped_early:
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn("training interrupted; keeping the best weights so far", stacklevel=3)
    finally:
        bar.close()
    if history.best_epoch < 0:  # interrupted before the first evaluation
        state.best = _snapshot(net)
    net.load_state_dict(state.best, strict=False)
    net.eval()
    history.seconds = seconds0 + time.perf_counter() - t0
    return history


# ---------------------------------------------------------------------- setting up
def _make_run(net: Any, interactions: sp.csr_matrix, cfg: TrainConfig,
              item_item: Any = None, carve: Any = None) -> _Run:
    """Seeds, device, optimizer and (under DDP) the DistributedDataParallel wrapper."""
    rank, world = _process_group(cfg)
    n_items = interactions.shape[1]
    negatives = resolve_negatives(cfg.negatives, n_items)
    sparse = resolve_sparse_updates(cfg.sparse_updates, negatives, n_items, world)
    if sparse and world > 1:
        raise ConfigError("sparse_updates=True does not run under DDP (its gradients are "
                          "all-reduced dense); pass sparse_updates='auto' or False")
    device = torch.device(cfg.device)
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", distributed.local_rank())
    torch.manual_seed(cfg.seed + rank)  # dropout masks differ between ranks
    net.to(device).train()
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers are frozen inputs: made rank 0's once (LightFM may differ between ranks),
        # never re-broadcast per step. Some parameters may be unused (e.g. cf_scale without CF).
        _broadcast_buffers(net)
        no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in
                   inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers")
        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True, **{no_sync: False})
    X = interactions.tocsr().astype(np.float32)
    X.data[:] = 1.0
    tables = [t for t in net.id_tables() if t.weight.requires_grad] if sparse else []
    for t in tables:  # until train_network returns
        t.sparse = True
    lazy = {id(t.weight) for t in tables}
    dense = [p for p in net.parameters() if p.requires_grad and id(p) not in lazy]
    opt = adam_with_sparse(dense, [t.weight for t in tables], cfg.lr, cfg.weight_decay,
                           decoupled=cfg.optimizer == "adamw")
    return _Run(
        net=net, model=model, opt=opt, sparse_tables=tables,
        X=X, users=np.flatnonzero(np.diff(X.indptr)), cfg=cfg, device=device,
        warm=np.diff(X.tocsc().indptr) > 0,
        drop_p=_drop_probs(net, cfg, device), rng=np.random.default_rng(cfg.seed),
        gen=torch.Generator().manual_seed(cfg.seed + rank),
        negatives=negatives, item_item=item_item, carve=carve,
        valid_item_item=None if item_item is None else CachedScores(item_item),
        rank=rank, world=world)


def _process_group(cfg: TrainConfig) -> tuple[int, int]:
    """(rank, world_size) of this process for `cfg.distributed`; (0, 1) without DDP."""
    import torch.distributed as dist

    if cfg.distributed is False:
        return 0, 1
    if cfg.distributed is True and not (dist.is_available() and dist.is_initialized()):
        raise ConfigError("distributed=True but torch.distributed is not initialised; launch with "
                          "torchrun and call multirec.distributed.init_from_env() before fit, or "
                          "use distributed='auto'")
    return (distributed.rank(), distributed.world_size()) if distributed.is_distributed() else (0, 1)


def _broadcast_buffers(net: Any) -> None:
    import torch.distributed as dist

    for b in net.buffers():
        dist.broadcast(b, src=0)


# ---------------------------------------------------------------------- one epoch
def _epoch_users(run: _Run) -> np.ndarray:
    """This rank's users for one epoch: a shared random order, strided by rank.

    The order is padded (by repeating its start) to a multiple of the world size, so every
    rank takes the same number of steps and no rank waits forever in DDP's all-reduce.
    """
    order = run.rng.permutation(run.users)
    if run.world == 1:
        return order
    per_rank = -(-order.size // run.world)
    return np.resize(order, per_rank * run.world)[run.rank::run.world]


def _train_epoch(run: _Run, state: _State, epoch: int) -> float:
    """One pass over this rank's users; returns the mean loss over steps (and ranks)."""
    cfg = run.cfg
    users = _epoch_users(run)
    total, steps = 0.0, 0
    for s in range(0, users.size, cfg.batch_size):
        loss = _batch_loss(run, users[s:s + cfg.batch_size])
        if not _all_finite(run, loss):
            run.net.load_state_dict(state.last_good, strict=False)
            value = loss.item()
            what = "non-finite on another rank" if math.isfinite(value) else value
            raise TrainingDivergedError(
                f"training loss became {what} at epoch {epoch}; the last good "
                f"weights were restored. Lower lr (now {cfg.lr}) or neg_weight "
                f"(now {cfg.neg_weight}), or check the inputs for extreme values."
            )
        run.opt.zero_grad(set_to_none=True)
        loss.backward()  # under DDP the gradients are averaged over ranks here
        run.opt.step()
        total, steps = total + loss.item(), steps + 1
    if run.world > 1:
        total, steps = distributed.all_reduce_sum([total, steps], run.device)
    return float(total / max(steps, 1))


def _candidate_pool(run: _Run, rows: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray | None]:
    """The batch's candidate items (P,) and, with sampled negatives, which of them were
    sampled ((P,) bool; None when the pool is the whole catalogue)."""
    n_items = run.X.shape[1]
    if run.negatives == "all":
        return np.arange(n_items), None
    sampled = run.rng.choice(n_items, size=run.negatives, replace=False)
    pool = np.union1d(rows.indices, sampled)
    return pool, np.isin(pool, sampled, assume_unique=True)


def _unknown_as_prior(run: _Run, logits: torch.Tensor, pool: np.ndarray) -> torch.Tensor:
    """Logits (B, P) where items without training interactions pass gradient to the cold
    prior `cold_bias` only: such an item is a negative for the base rate of new items, but
    its content must not be learned as disliked (it is unknown, not disliked; otherwise
    the content path learns to bury exactly the new items it has to serve)."""
    unknown = ~run.warm[pool]  # (P,)
    if not unknown.any():
        return logits
    cb = run.net.cold_bias
    frozen = logits.detach() + (cb - cb.detach())
    return torch.where(torch.from_numpy(unknown).to(logits.device), frozen, logits)


def _dropped(rows: sp.csr_matrix, p: float, gen: torch.Generator) -> sp.csr_matrix:
    """`rows` with each stored entry dropped with probability `p` (history input dropout)."""
    if p <= 0:
        return rows
    keep = (torch.rand(rows.nnz, generator=gen) >= p).numpy()
    out = rows.copy()
    out.data = out.data * keep
    out.eliminate_zeros()
    return out


def _in_pool(rows: sp.csr_matrix, pool: np.ndarray) -> sp.csr_matrix:
    """(B, P) `rows` re-indexed to the columns of `pool` (sorted; it holds every stored
    item of `rows`): the same as `rows[:, pool]`, without SciPy's column indexing."""
    indices = np.searchsorted(pool, rows.indices)
    return sp.csr_matrix((rows.data, indices, rows.indptr), shape=(rows.shape[0], pool.size))


def _batch_loss(run: _Run, u: np.ndarray) -> torch.Tensor:
    """Loss of one step for users `u` (B,): mean over the batch of the per-user loss."""
    cfg, device = run.cfg, run.device
    rows = run.X[u]  # (B, n_items) binary
    pool, sampled = _candidate_pool(run, rows)
    hist = _dropped(rows, cfg.input_dropout, run.gen)  # (B, n_items) history input
    bag = sparse_bag(_in_pool(hist, pool), device)  # (B, P) sparse
    ii = None
    if run.item_item is not None and run.net.use_item_item:
        ii = (run.item_item.scores(hist) if sampled is None  # the pool is the catalogue
              else run.item_item.scores_at(hist, pool))  # (B, P)
    use_cf = torch.rand(len(u), generator=run.gen) >= cfg.user_cf_dropout  # (B,)
    args = (torch.from_numpy(u).to(device), bag, torch.from_numpy(pool).to(device))
    kwargs = {"drop_p": run.drop_p, "use_cf": use_cf.to(device)}
    pos = _in_pool(rows, pool)  # (B, P) the users' positives among the pool's columns
    if sampled is not None and cfg.loss == "bce":
        return _sampled_bce(run, pos, pool, sampled, ii, args, kwargs)
    target = torch.from_numpy(pos.toarray()).to(device)  # (B, P)
    ii_t = None if ii is None else torch.from_numpy(ii).to(device)
    logits = _unknown_as_prior(run, run.model(*args, ii=ii_t, **kwargs), pool)  # (B, P)
    if cfg.loss == "bpr":
        return _bpr(logits, target, run.gen)
    weight = target + cfg.neg_weight * (1 - target)  # every non-observed pair is a negative
    return weighted_bce_sum(logits, target, weight) / len(u)


def _sampled_bce(run: _Run, pos: sp.csr_matrix, pool: np.ndarray, sampled: np.ndarray,
                 ii: np.ndarray | None, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> torch.Tensor:
    """BCE with K sampled negatives: each user's positives (`pos` (B, P), label 1, weight
    1) and the sampled items it did not interact with (label 0, weight neg_weight ·
    n_items / K, so each stands for n_items / K items). Only those cells are scored,
    O(B·K + nnz) instead of the whole (B, P) grid, whose other cells (other users'
    positives) carry no loss."""
    device, b = run.device, pos.shape[0]
    columns = np.flatnonzero(sampled)  # (K,) pool positions of the sampled items
    pair_rows = np.repeat(np.arange(b), np.diff(pos.indptr))  # (N,) each user's positives
    pair_cols = pos.indices  # (N,) their pool positions
    cells = TrainCells(
        columns=torch.from_numpy(columns).to(device),
        rows=torch.from_numpy(pair_rows).to(device), cols=torch.from_numpy(pair_cols).to(device))
    if ii is not None:
        cells.ii_columns = torch.from_numpy(np.ascontiguousarray(ii[:, columns])).to(device)
        cells.ii_pairs = torch.from_numpy(ii[pair_rows, pair_cols]).to(device)
    neg, pos = run.model(*args, cells=cells, **kwargs)  # (B, K), (N,)
    neg = _unknown_as_prior(run, neg, pool[columns])
    at = np.full(pool.size, -1)
    at[columns] = np.arange(columns.size)
    hit = at[pair_cols]  # (N,) the pair's column among the sampled ones, or -1
    seen = torch.zeros(b, columns.size)  # (B, K) 1 where a sampled item is a positive
    seen[pair_rows[hit >= 0], hit[hit >= 0]] = 1.0
    seen = seen.to(device)
    scale = run.cfg.neg_weight * run.X.shape[1] / run.negatives
    loss = weighted_bce_sum(neg, torch.zeros_like(neg), (1 - seen) * scale)
    return (loss + weighted_bce_sum(pos, torch.ones_like(pos), torch.ones_like(pos))) / b


def _all_finite(run: _Run, loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every rank (so all ranks stop together)."""
    bad = not bool(torch.isfinite(loss))
    if run.world > 1:
        bad = distributed.all_reduce_sum([bad], run.device)[0] > 0
    return not bad


def _any_rank(run: _Run, flag: bool) -> bool:
    if run.world > 1:
        return bool(distributed.all_reduce_sum([flag], run.device)[0] > 0)
    return bool(flag)


def _evaluate(run: _Run, valid: sp.csr_matrix | None, state: _State, epoch: int,
              logs: dict[str, float]) -> None:
    """Validation NDCG → `logs`, best weights and the early-stopping count."""
    cfg, history = run.cfg, state.history
    state.last_good = _snapshot(run.net)
    if valid is None or not valid.nnz:
        history.best_epoch, state.best = epoch, state.last_good
        return
    if run.net.finetuned:  # score with the encoders' current weights
        run.net.refresh_content()
    score = validation_ndcg(run.net, run.X, valid, cfg.k, run.device, item_item=run.valid_item_item,
                            max_users=cfg.max_valid_users, seed=cfg.seed,
                            shard=(run.rank, run.world))
    logs[f"val_ndcg@{cfg.k}"] = score
    if run.carve is not None:
        cold = validation_ndcg(run.net, run.X, run.carve.target, cfg.k, run.device,
                               item_item=run.valid_item_item, max_users=cfg.max_valid_users,
                               seed=cfg.seed, shard=(run.rank, run.world),
                               columns=run.carve.items)
        logs[f"val_cold_ndcg@{cfg.k}"] = cold
        score = score + (0.0 if math.isnan(cold) else cold)
    if score > history.best_score:
        history.best_score, history.best_epoch, state.bad_evals = score, epoch, 0
        state.best = state.last_good
    else:
        state.bad_evals += 1


# ---------------------------------------------------------------------- checkpoints
def _checkpoint_due(cfg: TrainConfig, state: _State) -> bool:
    every = cfg.checkpoint_every
    return every > 0 and (state.epoch % every == 0 or state.epoch == cfg.epochs
                          or state.history.stopped_early)


def _save(run: _Run, state: _State, fp: dict[str, Any]) -> None:
    """Write a checkpoint from rank 0 (every rank takes part in gathering the RNG states)."""
    rng_states = _gather_torch_rng(run)
    if run.rank != 0:
        return
    save_checkpoint(run.cfg.checkpoint_dir, Checkpoint(
        epoch=state.epoch, history=asdict(state.history), bad_evals=state.bad_evals,
        net=run.net.state_dict(), best=state.best, last_good=state.last_good,
        optimizer=run.opt.state_dict(), numpy_rng=run.rng.bit_generator.state,
        torch_rng=rng_states, fingerprint=fp))


def _resume(run: _Run, fp: dict[str, Any]) -> _State | None:
    """Restore weights, optimizer, RNGs and progress from the checkpoint; None if there is none."""
    cfg = run.cfg
    ckpt = load_checkpoint(cfg.checkpoint_dir)
    if run.world > 1:
        seen = distributed.all_reduce_sum([ckpt is not None], run.device)[0]
        if 0 < seen < run.world:
            raise ConfigError(f"only {int(seen)} of {run.world} ranks see a checkpoint in "
                              f"{cfg.checkpoint_dir!r}; put checkpoint_dir on storage all ranks share")
    if ckpt is None:
        return None
    check_fingerprint(ckpt.fingerprint, fp, cfg.checkpoint_dir)
    run.net.load_state_dict(ckpt.net)
    run.opt.load_state_dict(ckpt.optimizer)
    run.rng.bit_generator.state = ckpt.numpy_rng
    _set_torch_rng(run, ckpt.torch_rng, ckpt.epoch)
    best = {k: v.to(run.device) for k, v in ckpt.best.items()}
    last_good = best if ckpt.last_good is ckpt.best else {
        k: v.to(run.device) for k, v in ckpt.last_good.items()}
    return _State(History(**ckpt.history), best=best, last_good=last_good,
                  bad_evals=ckpt.bad_evals, epoch=ckpt.epoch)


def _torch_rng(run: _Run) -> dict[str, torch.Tensor]:
    states = {"generator": run.gen.get_state(), "cpu": torch.get_rng_state()}
    if run.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(run.device)
    return states


def _gather_torch_rng(run: _Run) -> list[dict[str, torch.Tensor]]:
    """Every rank's torch RNG states, in rank order."""
    mine = _torch_rng(run)
    if run.world == 1:
        return [mine]
    gathered = {k: distributed.all_gather(v.to(run.device)) for k, v in mine.items()}
    return [{k: gathered[k][r].cpu() for k in mine} for r in range(run.world)]


def _set_torch_rng(run: _Run, states: list[dict[str, torch.Tensor]], epoch: int) -> None:
    if len(states) != run.world:  # resumed with another number of processes
        warnings.warn(f"the checkpoint was written by {len(states)} processes, this run has "
                      f"{run.world}: random streams are reseeded, so the result will differ from "
                      "an uninterrupted run", stacklevel=3)
        seed = run.cfg.seed + run.rank + 7919 * epoch
        run.gen.manual_seed(seed)
        torch.manual_seed(seed)
        return
    mine = states[run.rank]
    run.gen.set_state(mine["generator"])
    torch.set_rng_state(mine["cpu"])
    if run.device.type == "cuda" and "cuda" in mine:
        torch.cuda.set_rng_state(mine["cuda"], run.device)


# ---------------------------------------------------------------------- helpers
def _snapshot(net: Any) -> dict[str, torch.Tensor]:
    """Copy of the learned parameters (buffers are frozen inputs and never change here)."""
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _bpr(logits: torch.Tensor, target: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """BPR: each positive against one uniformly sampled pool item that is not a positive."""
    pos_u, pos_i = target.nonzero(as_tuple=True)
    neg_i = torch.randint(0, target.shape[1], (pos_u.numel(),), generator=gen).to(target.device)
    keep = target[pos_u, neg_i] == 0
    diff = logits[pos_u, pos_i] - logits[pos_u, neg_i]
    return -(F.logsigmoid(diff) * keep).sum() / max(int(keep.sum()), 1)
