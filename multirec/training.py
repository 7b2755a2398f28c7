"""One readable training loop for `TwoTowerNetwork`.

Each step takes a batch of users and a pool of candidate items: every item seen in training
(`negatives="all"`, exact and fast for catalogues up to tens of thousands of items) or the
batch's positives plus `negatives=K` uniformly sampled items shared by the batch. The loss is
binary cross-entropy on observed pairs (label 1) and the pool's other items (label 0,
weight `neg_weight`), or BPR with one sampled negative per positive. The user's history
is the model input (with dropout, like a denoising autoencoder) and the targets.

Validation NDCG@k on held-out interactions drives early stopping; the best weights are
restored at the end, after a NaN loss (with an error), and after Ctrl-C.

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
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from . import distributed
from .checkpoint import Checkpoint, check_fingerprint, fingerprint, load_checkpoint, save_checkpoint
from .errors import ConfigError, TrainingDivergedError
from .history import History

__all__ = ["TrainConfig", "Callback", "train_network", "History"]

Callback = Callable[[int, dict[str, float]], bool | None]
"""Called after every epoch as `callback(epoch, logs)`; return True to stop training."""


@dataclass
class TrainConfig:
    """Optimisation settings (see `MultimodalRecommender` for the model settings)."""

    epochs: int = 60
    batch_size: int = 128  # users per step (per process under DDP)
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    loss: Literal["bce", "bpr"] = "bce"
    negatives: int | Literal["all"] = "all"
    neg_weight: float = 0.5
    input_dropout: float = 0.5  # dropout on the history bag (denoising)
    modality_dropout: float = 0.25  # chance to hide each content/CF source of an item per step
    id_dropout: float = 0.5  # chance to hide an item's ID residual (trains the content path)
    user_cf_dropout: float = 0.5  # chance to hide the LightFM user factor (trains fold-in)
    valid_fraction: float = 0.1
    eval_every: int = 5
    patience: int = 3  # evaluations without improvement before stopping
    k: int = 10  # validation NDCG@k
    seed: int = 0
    device: str = "cpu"
    show_progress: bool = True
    checkpoint_dir: str | None = None  # where `<dir>/latest` is written (see multirec.checkpoint)
    checkpoint_every: int = 0  # epochs between checkpoints; 0 = none (needs checkpoint_dir)
    resume: bool = False  # continue from `<checkpoint_dir>/latest` when it exists
    distributed: bool | Literal["auto"] = "auto"  # DDP; auto = when a process group (>1) is up

    def __post_init__(self) -> None:
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = os.fspath(self.checkpoint_dir)
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0, "neg_weight": self.neg_weight > 0,
            "input_dropout": 0 <= self.input_dropout < 1, "eval_every": self.eval_every >= 1,
            "modality_dropout": 0 <= self.modality_dropout < 1, "id_dropout": 0 <= self.id_dropout < 1,
            "user_cf_dropout": 0 <= self.user_cf_dropout <= 1, "patience": self.patience >= 1,
            "valid_fraction": 0 <= self.valid_fraction < 1, "k": self.k >= 1,
            "checkpoint_every": isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} is out of range")
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.loss not in ("bce", "bpr"):
            raise ConfigError(f"loss must be 'bce' or 'bpr', got {self.loss!r}")
        if self.negatives != "all" and not (isinstance(self.negatives, int) and self.negatives >= 1):
            raise ConfigError(f"negatives must be 'all' or a positive int, got {self.negatives!r}")
        if self.distributed not in (True, False, "auto"):
            raise ConfigError(f"distributed must be True, False or 'auto', got {self.distributed!r}")
        for name in ("checkpoint_every", "resume"):
            if getattr(self, name) and self.checkpoint_dir is None:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} needs checkpoint_dir "
                                  "(a directory for the checkpoints)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dense(rows: sp.csr_matrix, cols: np.ndarray | None, device: torch.device) -> torch.Tensor:
    sub = rows if cols is None else rows[:, cols]
    return torch.from_numpy(sub.toarray().astype(np.float32, copy=False)).to(device)


def _ndcg(scores: torch.Tensor, target: sp.csr_matrix, k: int) -> tuple[float, int]:
    """Sum of NDCG@k over rows of `scores (B, n)` with ≥1 target, and the number of such rows."""
    k = min(k, scores.shape[1])
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()  # (B, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    total, n = 0.0, 0
    for r in range(scores.shape[0]):
        rel = target.indices[target.indptr[r]:target.indptr[r + 1]]
        if rel.size == 0:
            continue
        hits = np.isin(top[r], rel)
        total += float((hits * disc).sum() / disc[: min(rel.size, k)].sum())
        n += 1
    return total, n


def _drop_probs(net: Any, cfg: TrainConfig, device: torch.device) -> torch.Tensor:  # (S+1,)
    probs = [cfg.modality_dropout] * len(net.source_names) + [cfg.id_dropout]
    return torch.tensor(probs, device=device)


def user_logits(net: Any, inputs: sp.csr_matrix, users: np.ndarray, device: torch.device,
                batch_size: int = 512) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """`(users, history (B, n_items), logits (B, n_items))` per batch of `users`, histories
    taken from the rows of `inputs`; the network in eval mode and without gradients."""
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            items = torch.arange(net.n_items, device=device)
            out = net.items(items)
            ctx = net.context(items, out)
            for s in range(0, users.size, batch_size):
                u = users[s:s + batch_size]
                bag = _dense(inputs[u], None, device)
                hu, bu = net.users(torch.from_numpy(u).to(device), bag, ctx)
                yield u, bag, net.logits(hu, bu, out)
    finally:
        net.train(was)


def validation_ndcg(net: Any, inputs: sp.csr_matrix, target: sp.csr_matrix, k: int,
                    device: torch.device, batch_size: int = 512, *,
                    shard: tuple[int, int] = (0, 1)) -> float:
    """Mean NDCG@k of `target` rows ranked from `inputs` (input items masked).

    With `shard=(rank, world_size)` each process scores every `world_size`-th user and the
    sums are all-reduced, so all ranks get the same value (and the same early stopping).
    """
    rank, world = shard
    users = np.flatnonzero(np.diff(target.indptr))
    if users.size == 0:
        return float("nan")
    total, n = 0.0, 0
    for u, bag, logits in user_logits(net, inputs, users[rank::world], device, batch_size):
        t, c = _ndcg(logits.masked_fill(bag > 0, float("-inf")), target[u], k)
        total, n = total + t, n + c
    if world > 1:
        total, n = distributed.all_reduce_sum([total, n], device)
    return float(total / max(n, 1))


@dataclass
class _Run:
    """What the steps of one training run share (built once by `_make_run`)."""

    net: Any  # the network; its weights are the model's
    model: Any  # `net`, or `DistributedDataParallel(net)` under DDP (the step goes through it)
    opt: torch.optim.Optimizer
    X: sp.csr_matrix  # (n_users, n_items) binary training interactions
    users: np.ndarray  # users with at least one training interaction
    cfg: TrainConfig
    device: torch.device
    drop_p: torch.Tensor  # (S + 1,) modality / ID-residual dropout probabilities
    rng: np.random.Generator  # same stream on every rank: user order, sampled negatives
    gen: torch.Generator  # this rank's stream: user-CF dropout, BPR negatives
    rank: int = 0
    world: int = 1


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
) -> History:
    """Train `net` in place; returns the History. Restores the best weights seen.

    With `cfg.checkpoint_every` a checkpoint is written every that many epochs (and at the
    end); with `cfg.resume` training continues from it, giving the same weights as a run that
    was never interrupted. Under DDP call this on every rank with the same arguments.
    """
    from tqdm.auto import tqdm

    run = _make_run(net, interactions, cfg)
    snap = _snapshot(net)
    state = _State(History(), best=snap, last_good=snap)
    fp = None
    if cfg.checkpoint_dir is not None:
        fp = fingerprint(net, cfg.to_dict(), interactions, valid)
        if cfg.resume:
            state = _resume(run, fp) or state
    history, seconds0, t0 = state.history, state.history.seconds, time.perf_counter()
    todo = range(0) if history.stopped_early else range(state.epoch, cfg.epochs)
    bar = tqdm(todo, disable=not cfg.show_progress or run.rank != 0, desc="train", unit="epoch",
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
        warnings.warn("training interrupted; keeping the best weights so far", stacklevel=2)
    finally:
        bar.close()
    if history.best_epoch < 0:  # interrupted before the first evaluation
        state.best = _snapshot(net)
    net.load_state_dict(state.best, strict=False)
    net.eval()
    history.seconds = seconds0 + time.perf_counter() - t0
    return history


# ---------------------------------------------------------------------- setting up
def _make_run(net: Any, interactions: sp.csr_matrix, cfg: TrainConfig) -> _Run:
    """Seeds, device, optimizer and (under DDP) the DistributedDataParallel wrapper."""
    rank, world = _process_group(cfg)
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
    params = [p for p in net.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    X = interactions.tocsr().astype(np.float32)
    X.data[:] = 1.0
    return _Run(
        net=net, model=model, opt=opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        X=X, users=np.flatnonzero(np.diff(X.indptr)), cfg=cfg, device=device,
        drop_p=_drop_probs(net, cfg, device), rng=np.random.default_rng(cfg.seed),
        gen=torch.Generator().manual_seed(cfg.seed + rank), rank=rank, world=world)


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


def _candidate_pool(run: _Run, rows: sp.csr_matrix) -> np.ndarray | None:  # (P,) or None = all
    """The batch's candidate items: all (None) or its positives plus sampled negatives."""
    if run.cfg.negatives == "all":
        # Every catalogue item is a candidate negative, including items nobody interacted with
        # (as in LightFM): the model learns how (un)likely content-only items are.
        return None
    n_items = run.X.shape[1]
    sampled = run.rng.choice(n_items, size=min(run.cfg.negatives, n_items), replace=False)
    return np.union1d(rows.indices, sampled)


def _batch_loss(run: _Run, u: np.ndarray) -> torch.Tensor:
    """Loss of one step for users `u` (B,): mean over the batch of the per-user loss."""
    cfg, device = run.cfg, run.device
    rows = run.X[u]
    pool = _candidate_pool(run, rows)
    target = _dense(rows, pool, device)  # (B, P)
    items = torch.arange(run.X.shape[1]) if pool is None else torch.from_numpy(pool)
    bag = F.dropout(target, cfg.input_dropout) * (1 - cfg.input_dropout)  # (B, P) history input
    use_cf = torch.rand(len(u), generator=run.gen) >= cfg.user_cf_dropout  # (B,)
    logits = run.model(torch.from_numpy(u).to(device), bag, items.to(device), drop_p=run.drop_p,
                       use_cf=use_cf.to(device))  # (B, P)
    if cfg.loss == "bpr":
        return _bpr(logits, target, run.gen)
    weight = target + cfg.neg_weight * (1 - target)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum") / len(u)


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
    score = validation_ndcg(run.net, run.X, valid, cfg.k, run.device, shard=(run.rank, run.world))
    logs[f"val_ndcg@{cfg.k}"] = score
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
