"""`History`: what happened while a model trained (per-epoch logs, best epoch, timing)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import DataError, MissingBackendError

__all__ = ["History"]


@dataclass
class History:
    """What happened during training.

    `epochs[e]` holds that epoch's logs: "epoch", "loss" and, on evaluated epochs,
    "val_ndcg@k". `to_dict()` / `from_dict()` round-trip through `json` (a `best_score` of
    -inf is written as `-Infinity`, which `json.loads` reads back); `plot()` draws the curves.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    # what early stopping maximised: validation NDCG@k, plus the cold-item carve's NDCG@k
    # when there is a carve (each is in the best epoch's logs, `best_logs()`)
    best_score: float = -math.inf
    stopped_early: bool = False
    interrupted: bool = False
    seconds: float = 0.0
    item_item_scale: float | None = None  # multiplier of the item-item weight set on validation

    def best_logs(self) -> dict[str, float]:
        """The logs of the best epoch ({} before any evaluation)."""
        return next((dict(e) for e in self.epochs if e.get("epoch") == self.best_epoch), {})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of every field (the epoch logs are copied, not shared)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a History from `to_dict()` output; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise DataError(f"History.from_dict() expects a dict, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DataError(f"unknown History field(s) {unknown}; the fields are {sorted(names)}")
        epochs = data.get("epochs", [])
        if not isinstance(epochs, list) or not all(isinstance(e, Mapping) for e in epochs):
            raise DataError(f"History 'epochs' must be a list of dicts, got {epochs!r}")
        kw = dict(data)
        kw["epochs"] = [dict(e) for e in epochs]
        if kw.get("best_score") is None:
            kw["best_score"] = -math.inf
        return cls(**kw)

    def plot(self, ax: Any = None) -> Any:
        """Training loss (left axis) and validation NDCG (right axis) per epoch; returns `ax`.

        Draws on `ax` (a matplotlib Axes) or on a new figure. Needs matplotlib
        (`pip install 'multirec[plot]'`).
        """
        try:
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError as exc:
            raise MissingBackendError("matplotlib", "plot", "History.plot()") from exc
        if not self.epochs:
            raise DataError("this History has no epochs to plot; train the model first "
                            "(model.fit(data), then model.history_.plot())")
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        x = [int(e.get("epoch", i)) + 1 for i, e in enumerate(self.epochs)]  # 1-based epochs
        loss = [(xi, e["loss"]) for xi, e in zip(x, self.epochs) if "loss" in e]
        if loss:
            ax.plot(*zip(*loss), color="tab:blue", marker=".", label="train loss")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss", color="tab:blue")
        keys = sorted({k for e in self.epochs for k in e if k.startswith("val_ndcg")})
        if keys:
            right = ax.twinx()
            for key in keys:
                pts = [(xi, e[key]) for xi, e in zip(x, self.epochs) if key in e]
                right.plot(*zip(*pts), color="tab:orange", marker="o", label=key)
            right.set_ylabel(keys[0].replace("val_", "validation "), color="tab:orange")
            if self.best_epoch >= 0:
                right.axvline(self.best_epoch + 1, color="grey", linestyle=":", label="best epoch")
            lines = ax.get_lines() + right.get_lines()
            ax.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize="small")
        ax.set_title("training history")
        return ax
