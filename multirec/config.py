"""Every setting of a multirec model, its default and its check, in one place.

    TrainConfig    optimisation: epochs (a maximum: early stopping ends training), lr,
                   negatives, dropouts, validation, threads, device, checkpoints
    CFConfig       the LightFM component
    NetworkConfig  the shape of the two-tower network (saved verbatim; the network is
                   built from it on `fit` and on load)

Rules that adapt a default to the data (`resolve_*`; each is applied in `fit` and the
result is recorded in `model.fit_config_`):

- `negatives="auto"`: every catalogue item is a negative (`"all"`, exact) up to
  `ALL_NEGATIVES_MAX_ITEMS` items; above, `SAMPLED_NEGATIVES` uniformly sampled items per
  step, importance-weighted so the loss estimates the same full-catalogue objective.
- `num_threads=None`: 1 thread on machines with ≤ 2 cores (a second thread made steps
  7–18× slower on busy 2-core machines), else half the cores, at most 8. Applied to torch,
  BLAS (threadpoolctl) and LightFM while `fit` runs, then restored.
- `refit_warm_start="auto"`: the refit on all interactions trains from scratch up to
  `WARM_REFIT_MIN_ITEMS` items; above, it continues the validation model for a share
  `WARM_REFIT_SHARE` of the epochs (measured at 20k long-tail items, CF-only, 1 thread,
  side by side: fit 349 → 268 s, test NDCG@10 0.2674 → 0.2680; on ml-100k it cost fused
  cold items 0.286 → 0.280 and with the tags encoder 0.285 → 0.262, and every row of the 2k
  long tail −0.002 to +0.000, so small catalogues, where the refit takes seconds, keep the
  full one).
- LightFM uses `num_threads=1` unless `CFConfig.num_threads` says otherwise: LightFM's
  parallel SGD is lock-free, so only one thread gives the same factors for the same seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from .errors import ConfigError

__all__ = ["TrainConfig", "CFConfig", "NetworkConfig", "ModelConfig", "MODEL_DEFAULTS",
           "check_device", "resolve_threads", "resolve_negatives", "resolve_sparse_updates",
           "ALL_NEGATIVES_MAX_ITEMS", "SPARSE_UPDATES_MIN_ITEMS",
           "SAMPLED_NEGATIVES", "WARM_REFIT_MIN_ITEMS", "WARM_REFIT_SHARE", "resolve_warm_start",
           "from_dict", "parse_settings", "is_int"]

ALL_NEGATIVES_MAX_ITEMS = 4096
SAMPLED_NEGATIVES = 1024
SPARSE_UPDATES_MIN_ITEMS = 50_000  # `sparse_updates="auto"` from this many items
WARM_REFIT_MIN_ITEMS = 10_000
WARM_REFIT_SHARE = 0.25
_LOSSES = ("warp", "bpr", "logistic", "warp-kos")


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _check_ints(owner: str, obj: Any, lows: dict[str, int]) -> None:
    for name, low in lows.items():
        value = getattr(obj, name)
        if not is_int(value) or value < low:
            raise ConfigError(f"{owner}.{name}={value!r}; it must be an integer >= {low}")


def _check_range(owner: str, obj: Any, ranges: dict[str, tuple[float, float, bool]]) -> None:
    """`ranges[name] = (low, high, high_inclusive)`; low is inclusive."""
    for name, (low, high, incl) in ranges.items():
        value = getattr(obj, name)
        ok = _is_number(value) and low <= value and (value <= high if incl else value < high)
        if not ok:
            bound = f"<= {high}" if incl else f"< {high}"
            raise ConfigError(f"{owner}.{name}={value!r}; it must be a number >= {low} and {bound}")


def check_device(device: Any) -> str:
    """A torch device string that exists on this machine, or a clear error."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device={device!r} is not a torch device; use 'cpu', 'cuda' or "
                          "'cuda:N'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but CUDA is not available on this machine; "
                              "use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device={device!r} but only {torch.cuda.device_count()} CUDA "
                              "device(s) exist")
    elif dev.type not in ("cpu", "mps"):
        raise ConfigError(f"device={device!r} is not supported; use 'cpu' or 'cuda'")
    return device


def resolve_threads(num_threads: int | None) -> int:
    """Threads for torch/BLAS during `fit` (see the module docstring for the default)."""
    if num_threads is not None:
        return int(num_threads)
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(8, cores // 2)


def resolve_negatives(negatives: int | str, n_items: int) -> int | str:
    """`"all"` or a number of sampled negatives per step for a catalogue of `n_items`."""
    if negatives == "auto":
        return "all" if n_items <= ALL_NEGATIVES_MAX_ITEMS else SAMPLED_NEGATIVES
    if negatives != "all" and negatives >= n_items:
        return "all"
    return negatives


def resolve_sparse_updates(setting: bool | str, negatives: int | str, n_items: int,
                           world_size: int = 1) -> bool:
    """Whether the per-item and per-user tables train with sparse gradients and lazy Adam.

    "auto" does from `SPARSE_UPDATES_MIN_ITEMS` items, when negatives are sampled
    (`negatives` resolved; with "all" every item row has a gradient at every step anyway),
    in a single process (DDP all-reduces dense gradients). Measured (1 thread, the ID
    tables' part of a step, ~5,700 rows touched): 8.5 ms dense against 8.1 ms sparse at 20k
    items, 69 against 12 ms at 200k; a whole step at 20k items was 27 ms dense, 30 ms
    sparse (gathering scattered rows costs more per row than streaming the whole table)."""
    if setting == "auto":
        return negatives != "all" and n_items >= SPARSE_UPDATES_MIN_ITEMS and world_size == 1
    return bool(setting)


def resolve_warm_start(setting: float | str, n_items: int) -> float:
    """The share of epochs a warm-started refit runs (0: the refit trains from scratch)."""
    if setting == "auto":
        return WARM_REFIT_SHARE if n_items > WARM_REFIT_MIN_ITEMS else 0.0
    return float(setting)


@dataclass
class TrainConfig:
    """Optimisation settings (see `MultimodalRecommender` for the model settings).

    `epochs` is a maximum: validation NDCG@k on `valid_fraction` of the interactions
    (at most `max_valid_users` users, sampled with the seed) is measured every `eval_every`
    epochs, training stops after `patience` evaluations without improvement, and the best
    weights are restored.
    """

    epochs: int = 100
    batch_size: int = 128  # users per step (per process under DDP)
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    loss: Literal["bce", "bpr"] = "bce"
    negatives: int | Literal["all", "auto"] = "auto"
    # the ID tables (item_id, item_ctx_id, item_bias, user_bias) with sparse gradients and
    # lazy Adam (`optim.LazyAdam`: only the rows a step touched move), so a step's cost does
    # not grow with the catalogue; "auto": from 50,000 items with sampled negatives, one process
    sparse_updates: bool | Literal["auto"] = "auto"
    neg_weight: float = 0.5
    input_dropout: float = 0.5  # dropout on the history bag (denoising)
    modality_dropout: float = 0.25  # chance to hide each content/CF source of an item per step
    id_dropout: float = 0.5  # chance to hide an item's ID residual (trains the content path)
    user_cf_dropout: float = 0.5  # chance to hide the LightFM user factor (trains fold-in)
    valid_fraction: float = 0.1
    cold_valid_items: float = 0.05  # share of warm items with content held out as new items
    popularity_prior: bool = True  # tune a popularity prior for short histories (multirec.prior)
    # users the model does not know (fold-in) get the item-item (EASE) term weighted by
    # n / (n + κ_ii), n their history length: EASE's weights fit full histories, and from
    # one to five interactions they ranked far below popularity on ml-100k. "auto": κ_ii is
    # chosen with the prior on the carved new users (below) when there are any, else 20
    # where the popularity prior is on and 0 (full weight) where it is off; a number: that κ_ii
    new_user_item_item_halflife: float | Literal["auto"] = "auto"
    # share of the users (at most 200) held out of the validation model as simulated new
    # users, served from their first interactions (by timestamp) to choose the prior and
    # κ_ii (`multirec.uservalid`); only with `refit`, which trains on them afterwards. Off
    # by default: 0.25 helped ml-100k's cold users (fused NDCG@10 0.396/0.379/0.355 →
    # 0.406/0.386/0.368 at 1/3/5 interactions) but cost its cold items (0.286 → 0.244)
    new_user_valid_users: float = 0.0
    refit: bool = True  # once validation has chosen, retrain on all interactions (`multirec.fit`)
    # 0: the refit trains LightFM and the towers from scratch for the epochs validation chose;
    # s in (0, 1]: it continues the validation model on all interactions instead, for
    # max(1, round(s · epochs)) tower epochs and max(1, round(s · cf.epochs)) LightFM passes;
    # "auto": 0 up to 10,000 items, 0.25 above (`resolve_warm_start`)
    refit_warm_start: float | Literal["auto"] = "auto"
    # score cold items also by their content's similarity to the user's history (side
    # features and frozen content vectors, `multirec.neighbours`), weights chosen on the carve
    content_neighbours: bool = True
    max_valid_users: int = 2000  # validation NDCG on at most this many (sampled) users
    eval_every: int = 2
    patience: int = 3  # evaluations without improvement before stopping
    k: int = 10  # validation NDCG@k
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None  # torch/BLAS threads during fit; None: see resolve_threads
    show_progress: bool = True
    checkpoint_dir: str | None = None  # where `<dir>/latest` is written (see multirec.checkpoint)
    checkpoint_every: int = 0  # epochs between checkpoints; 0 = none (needs checkpoint_dir)
    resume: bool = False  # continue from `<checkpoint_dir>/latest` when it exists
    distributed: bool | Literal["auto"] = "auto"  # DDP; auto = when a process group (>1) is up

    def __post_init__(self) -> None:
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = os.fspath(self.checkpoint_dir)
        _check_ints("TrainConfig", self, {
            "epochs": 1, "batch_size": 1, "eval_every": 1, "patience": 1, "k": 1, "seed": 0,
            "checkpoint_every": 0, "max_valid_users": 1})
        _check_range("TrainConfig", self, {
            "lr": (1e-12, 10.0, True), "weight_decay": (0.0, np.inf, False),
            "neg_weight": (1e-12, np.inf, False), "input_dropout": (0.0, 1.0, False),
            "modality_dropout": (0.0, 1.0, False), "id_dropout": (0.0, 1.0, False),
            "user_cf_dropout": (0.0, 1.0, True), "valid_fraction": (0.0, 1.0, False),
            "cold_valid_items": (0.0, 0.5, True), "new_user_valid_users": (0.0, 0.5, True)})
        w = self.refit_warm_start
        if w != "auto" and not (_is_number(w) and 0 <= w <= 1):
            raise ConfigError(f"TrainConfig.refit_warm_start={w!r}; it must be 'auto' or a number "
                              ">= 0 and <= 1 (0: the refit trains from scratch)")
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.loss not in ("bce", "bpr"):
            raise ConfigError(f"loss must be 'bce' or 'bpr', got {self.loss!r}")
        if self.negatives not in ("all", "auto") and not (
                is_int(self.negatives) and self.negatives >= 1):
            raise ConfigError(f"negatives must be 'auto', 'all' or a positive int, got "
                              f"{self.negatives!r}")
        if not (isinstance(self.sparse_updates, (bool, np.bool_)) or self.sparse_updates == "auto"):
            raise ConfigError(f"sparse_updates must be True, False or 'auto', got {self.sparse_updates!r}")
        if self.sparse_updates is True and self.weight_decay > 0:
            raise ConfigError(f"sparse_updates=True has no weight decay (lazy Adam), but weight_decay="
                              f"{self.weight_decay}; pass sparse_updates=False or weight_decay=0")
        if self.distributed not in (True, False, "auto"):
            raise ConfigError(f"distributed must be True, False or 'auto', got {self.distributed!r}")
        if self.num_threads is not None and not (is_int(self.num_threads) and self.num_threads >= 1):
            raise ConfigError(f"num_threads must be None or an integer >= 1, got {self.num_threads!r}")
        h = self.new_user_item_item_halflife
        if h != "auto" and (isinstance(h, (bool, str)) or not isinstance(h, (int, float))
                            or not (math.isfinite(h) and h >= 0)):
            raise ConfigError(f"TrainConfig.new_user_item_item_halflife must be 'auto' or a number "
                              f">= 0 (0: no damping), got {h!r}")
        for name in ("show_progress", "resume", "popularity_prior", "refit", "content_neighbours"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r}; it must be True or False")
        for name in ("checkpoint_every", "resume"):
            if getattr(self, name) and self.checkpoint_dir is None:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} needs checkpoint_dir "
                                  "(a directory for the checkpoints)")
        self.device = check_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CFConfig:
    """LightFM settings (names as in `lightfm.LightFM`; `epochs` = passes of `fit_partial`).

    `use_item_features="auto"` (default) uses the data's item side features when it has them
    (LightFM's hybrid model, so a cold item's factor comes from its features).
    `use_user_features` is off by default: multirec serves new users by fold-in from their
    history, and a hybrid user representation measured worse for warm users (ml-100k).
    Training is bit-for-bit reproducible for a given `seed` only with `num_threads=1` (the
    default; LightFM's parallel updates are lock-free).
    """

    no_components: int = 32
    loss: str = "warp"
    learning_rate: float = 0.05
    epochs: int = 20
    item_alpha: float = 0.0
    user_alpha: float = 0.0
    max_sampled: int = 10
    num_threads: int = 1
    seed: int = 0
    use_item_features: bool | Literal["auto"] = "auto"
    use_user_features: bool | Literal["auto"] = False

    def __post_init__(self) -> None:
        _check_ints("CFConfig", self, {"no_components": 1, "epochs": 1, "max_sampled": 1,
                                       "num_threads": 1, "seed": 0})
        if not _is_number(self.learning_rate) or not 0 < self.learning_rate < np.inf:
            raise ConfigError(f"CFConfig.learning_rate={self.learning_rate!r}; it must be a "
                              "positive number (LightFM's default is 0.05)")
        for name in ("item_alpha", "user_alpha"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < np.inf:
                raise ConfigError(f"CFConfig.{name}={value!r}; it must be a number >= 0 "
                                  "(L2 penalty per example, e.g. 1e-6)")
        if self.loss not in _LOSSES:
            raise ConfigError(f"CFConfig.loss={self.loss!r}; choose one of {list(_LOSSES)}")
        for name in ("use_item_features", "use_user_features"):
            if getattr(self, name) not in (True, False, "auto"):
                raise ConfigError(f"CFConfig.{name}={getattr(self, name)!r}; it must be True, "
                                  "False or 'auto'")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return asdict(self)


@dataclass
class NetworkConfig:
    """Shape of `TwoTowerNetwork`; saved verbatim with a model and used to rebuild it."""

    n_users: int
    n_items: int
    content_dims: dict[str, int] = field(default_factory=dict)  # {modality: encoder dim}
    cf_dim: int = 0  # LightFM factor size; 0 = no CF source
    dim: int = 64
    fusion: str = "sum"
    use_id_embeddings: bool = True
    use_user_cf: bool = True
    item_item: bool = False  # a learned weight for external item-item scores
    finetuned: list[str] = field(default_factory=list)  # modalities trained end to end
    # {source: width} of the content-neighbour vectors (`multirec.neighbours`); {} = none
    content_neighbours: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_ints("NetworkConfig", self, {"n_users": 0, "n_items": 0, "cf_dim": 0, "dim": 1})
        for name, width in self.content_neighbours.items():
            if not isinstance(name, str) or not is_int(width) or width < 1:
                raise ConfigError(f"content_neighbours[{name!r}]={width!r}; widths must be "
                                  "integers >= 1 keyed by source name")
        if self.n_users > 2**31 or self.n_items > 2**31:
            raise ConfigError(f"NetworkConfig sizes n_users={self.n_users}, n_items={self.n_items} "
                              "are beyond what one network holds (2^31)")
        for m, d in self.content_dims.items():
            if not (isinstance(m, str) and m.isidentifier()):
                raise ConfigError(f"modality name {m!r} must be a Python identifier "
                                  "(letters, digits, _; not starting with a digit)")
            if not is_int(d) or d < 1:
                raise ConfigError(f"content_dims[{m!r}]={d!r}; it must be an integer >= 1")
        if self.fusion not in ("sum", "concat", "gated"):
            raise ConfigError(f"fusion must be 'sum', 'concat' or 'gated', got {self.fusion!r}")
        unknown = [m for m in self.finetuned if m not in self.content_dims]
        if unknown:
            raise ConfigError(f"finetuned modalities {unknown} have no content_dims entry")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_dict(cls: type, values: dict[str, Any], where: str = "config") -> Any:
    """`cls(**values)` with unknown keys reported by name (for configs read from files)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(values).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s) {unknown} in {where}; valid keys are "
                          f"{sorted(names)}")
    return cls(**values)


def parse_settings(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Command-line settings `["refit=false", "cf={\\"epochs\\": 5}", "fusion=gated"]` →
    `{"refit": False, "cf": {"epochs": 5}, "fusion": "gated"}`: each value read as JSON,
    else kept as a string. Names and values are checked where they are used (the model)."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"a setting must look like NAME=VALUE (e.g. refit_warm_start=0.25), "
                              f"got {pair!r}")
        if name in out:
            raise ConfigError(f"setting {name!r} is given twice ({pairs})")
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            out[name] = text
    return out


MODEL_DEFAULTS: dict[str, Any] = {
    "encoders": None, "dim": 64, "fusion": "sum", "cf": True, "use_id_embeddings": True,
    "use_user_cf": True, "item_item": "auto", "item_item_l2": None, "item_item_dropout": 0.5,
    "encode_batch_size": 32,
    "cache_dir": None, "on_error": "raise"}


@dataclass
class ModelConfig:
    """The resolved, checked settings of a `MultimodalRecommender` (see its docstring)."""

    encoders: Any  # {modality: Encoder | name | config dict} or None
    dim: int
    fusion: str
    cf: CFConfig | None
    use_id_embeddings: bool
    use_user_cf: bool
    item_item: bool | str
    item_item_l2: float | None
    item_item_dropout: float
    encode_batch_size: int
    cache_dir: Any
    train: TrainConfig
    on_error: str = "raise"  # unreadable content: "raise" or "skip" (treated as missing)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> ModelConfig:
        """From the model's parameters (`get_params()`); every check runs here."""
        train = TrainConfig(**{f.name: p[f.name] for f in fields(TrainConfig)})
        cf = p["cf"]
        if cf is True:
            cf = CFConfig(seed=train.seed)
        elif isinstance(cf, dict):
            cf = from_dict(CFConfig, {"seed": train.seed, **cf}, "cf")
        elif cf is False or cf is None:
            cf = None
        elif not isinstance(cf, CFConfig):
            raise ConfigError(f"cf must be True, False, a CFConfig or a dict of its fields; got {cf!r}")
        for name in ("dim", "encode_batch_size"):
            if not is_int(p[name]) or p[name] < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {p[name]!r}")
        if p["fusion"] not in ("sum", "concat", "gated"):
            raise ConfigError(f"fusion must be 'sum', 'concat' or 'gated', got {p['fusion']!r}")
        if p["item_item"] not in (True, False, "auto"):
            raise ConfigError(f"item_item must be True, False or 'auto', got {p['item_item']!r}")
        l2 = p["item_item_l2"]
        if l2 is not None and not (_is_number(l2) and 0 < l2 < np.inf):
            raise ConfigError(f"item_item_l2 must be > 0 or None, got {l2!r}")
        drop = p["item_item_dropout"]
        if not (_is_number(drop) and 0 <= drop < 1):
            raise ConfigError(f"item_item_dropout must be a number in [0, 1), got {drop!r}; "
                              "0 is plain EASE, 0.5 the default")
        for name in ("use_id_embeddings", "use_user_cf"):
            if not isinstance(p[name], (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {p[name]!r}")
        if p["on_error"] not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {p['on_error']!r}")
        return cls(encoders=p["encoders"], dim=int(p["dim"]), fusion=p["fusion"], cf=cf,
                   use_id_embeddings=bool(p["use_id_embeddings"]), use_user_cf=bool(p["use_user_cf"]),
                   item_item=p["item_item"], item_item_l2=l2,
                   item_item_dropout=float(drop),
                   encode_batch_size=int(p["encode_batch_size"]), cache_dir=p["cache_dir"],
                   train=train, on_error=p["on_error"])

    def to_dict(self, encoder_configs: dict[str, Any] | None = None,
                item_item_l2: float | None = None) -> dict[str, Any]:
        """JSON-able constructor arguments (encoders as configs, the fitted λ if any)."""
        if encoder_configs is None:
            from .content import resolve_encoders

            encoder_configs = {m: e.to_config() for m, e in resolve_encoders(self.encoders).items()}
        return {
            "encoders": encoder_configs, "dim": self.dim, "fusion": self.fusion,
            "cf": self.cf.to_dict() if self.cf is not None else False,
            "use_id_embeddings": self.use_id_embeddings, "use_user_cf": self.use_user_cf,
            "item_item": self.item_item,
            "item_item_l2": self.item_item_l2 if item_item_l2 is None else item_item_l2,
            "item_item_dropout": self.item_item_dropout,
            "encode_batch_size": self.encode_batch_size,
            "cache_dir": None if self.cache_dir is None else os.fspath(self.cache_dir),
            "on_error": self.on_error, **self.train.to_dict(),
        }
