"""One readable training loop for `TwoTowerNetwork`.

Each step takes a batch of users and a pool of candidate items: every item seen in training
(`negatives="all"`, exact and fast for catalogues up to tens of thousands of items) or the
batch's positives plus `negatives=K` uniformly sampled items shared by the batch. The loss is
binary cross-entropy on observed pairs (label 1) and the pool's other items (label 0,
weight `neg_weight`), or BPR with one sampled negative per positive. The user's history
is the model input (with dropout, like a denoising autoencoder) and the targets.

Validation NDCG@k on held-out interactions drives early stopping; the best weights are
restored at the end, after a NaN loss (with an error), and after Ctrl-C.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .errors import ConfigError, TrainingDivergedError

__all__ = ["TrainConfig", "Callback", "train_network", "History"]

Callback = Callable[[int, dict[str, float]], bool | None]
"""Called after every epoch as `callback(epoch, logs)`; return True to stop training."""


@dataclass
class TrainConfig:
    """Optimisation settings (see `MultimodalRecommender` for the model settings)."""

    epochs: int = 60
    batch_size: int = 128  # users per step
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

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0, "neg_weight": self.neg_weight > 0,
            "input_dropout": 0 <= self.input_dropout < 1, "eval_every": self.eval_every >= 1,
            "modality_dropout": 0 <= self.modality_dropout < 1, "id_dropout": 0 <= self.id_dropout < 1,
            "user_cf_dropout": 0 <= self.user_cf_dropout <= 1, "patience": self.patience >= 1,
            "valid_fraction": 0 <= self.valid_fraction < 1, "k": self.k >= 1,
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class History:
    """What happened during training."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    stopped_early: bool = False
    interrupted: bool = False
    seconds: float = 0.0


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


def validation_ndcg(net: Any, inputs: sp.csr_matrix, target: sp.csr_matrix, k: int,
                    device: torch.device, batch_size: int = 512) -> float:
    """Mean NDCG@k of `target` rows ranked from `inputs` (input items masked)."""
    users = np.flatnonzero(np.diff(target.indptr))
    if users.size == 0:
        return float("nan")
    was = net.training
    net.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        items = torch.arange(net.n_items, device=device)
        out = net.items(items)
        ctx = net.context(items, out)
        for s in range(0, users.size, batch_size):
            u = users[s:s + batch_size]
            bag = _dense(inputs[u], None, device)
            hu, bu = net.users(torch.from_numpy(u).to(device), bag, ctx)
            scores = net.logits(hu, bu, out).masked_fill(bag > 0, float("-inf"))
            t, c = _ndcg(scores, target[u], k)
            total, n = total + t, n + c
    net.train(was)
    return total / max(n, 1)


def train_network(
    net: Any,
    interactions: sp.csr_matrix,  # (n_users, n_items) training pairs (binary)
    valid: sp.csr_matrix | None,  # (n_users, n_items) held-out pairs for early stopping
    cfg: TrainConfig,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train `net` in place; returns the History. Restores the best weights seen."""
    from tqdm.auto import tqdm

    device = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    net.to(device).train()
    params = [p for p in net.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    X = interactions.tocsr().astype(np.float32)
    X.data[:] = 1.0
    users = np.flatnonzero(np.diff(X.indptr))
    # Every catalogue item is a candidate negative, including items nobody interacted with
    # (as in LightFM): the model learns how (un)likely content-only items are.
    warm_items = np.arange(X.shape[1])
    drop_p = _drop_probs(net, cfg, device)
    history = History()
    best_state = _snapshot(net)
    last_good = best_state
    bad_evals = 0
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), disable=not cfg.show_progress, desc="train", unit="epoch")
    try:
        for epoch in bar:
            perm = rng.permutation(users)
            total, steps = 0.0, 0
            for s in range(0, perm.size, cfg.batch_size):
                u = perm[s:s + cfg.batch_size]
                rows = X[u]
                if cfg.negatives == "all":
                    pool = warm_items
                else:
                    sampled = rng.choice(warm_items, size=min(cfg.negatives, warm_items.size), replace=False)
                    pool = np.union1d(rows.indices, sampled)
                target = _dense(rows, pool, device)  # (B, P)
                items = torch.from_numpy(pool).to(device)
                out = net.items(items, drop_p=drop_p)
                ctx = net.context(items, out)
                bag = F.dropout(target, cfg.input_dropout) * (1 - cfg.input_dropout)
                use_cf = torch.rand(len(u), generator=gen) >= cfg.user_cf_dropout
                hu, bu = net.users(torch.from_numpy(u).to(device), bag, ctx, use_cf=use_cf.to(device))
                logits = net.logits(hu, bu, out)  # (B, P)
                if cfg.loss == "bce":
                    weight = target + cfg.neg_weight * (1 - target)
                    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight,
                                                              reduction="sum") / len(u)
                else:
                    loss = _bpr(logits, target, gen)
                if not torch.isfinite(loss):
                    net.load_state_dict(last_good, strict=False)
                    raise TrainingDivergedError(
                        f"training loss became {loss.item()} at epoch {epoch}; the last good "
                        f"weights were restored. Lower lr (now {cfg.lr}) or neg_weight "
                        f"(now {cfg.neg_weight}), or check the inputs for extreme values."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, steps = total + loss.item(), steps + 1
            logs = {"epoch": epoch, "loss": total / max(steps, 1)}
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                last_good = _snapshot(net)
                if valid is not None and valid.nnz:
                    score = validation_ndcg(net, X, valid, cfg.k, device)
                    logs[f"val_ndcg@{cfg.k}"] = score
                    if score > history.best_score:
                        history.best_score, history.best_epoch, bad_evals = score, epoch, 0
                        best_state = last_good
                    else:
                        bad_evals += 1
                else:
                    history.best_epoch, best_state = epoch, last_good
            history.epochs.append(logs)
            bar.set_postfix({k: round(v, 4) for k, v in logs.items() if k != "epoch"})
            stop = any(cb(epoch, logs) for cb in callbacks)
            if bad_evals >= cfg.patience or stop:
                history.stopped_early = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn("training interrupted; keeping the best weights so far", stacklevel=2)
    finally:
        bar.close()
    if history.best_epoch < 0:  # interrupted before the first evaluation
        best_state = _snapshot(net)
    net.load_state_dict(best_state, strict=False)
    net.eval()
    history.seconds = time.perf_counter() - t0
    return history


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
