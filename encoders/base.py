"""`Encoder`: the one interface every content encoder implements.

An encoder turns a batch of raw items (strings, image paths, waveforms, ...) into a float
tensor of shape (B, dim). Subclasses implement two methods:

    preprocess(raw_batch) -> inputs      # tokenise / decode / resample; no gradients needed
    forward(inputs) -> Tensor (B, dim)   # the model itself

and set the class attribute `modality` and the attribute `dim`. Constructor keyword arguments
are recorded automatically, so `to_config()` / `from_config()` work without extra code as
long as those arguments are JSON-able (names, paths, numbers).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from .errors import EncoderConfigError, EncoderInputError

if TYPE_CHECKING:
    from .cache import EmbeddingCache

__all__ = ["Encoder", "Prepared", "batched", "content_hash"]


def batched(items: Iterable[Any], batch_size: int) -> Iterator[list[Any]]:
    """Yield lists of at most `batch_size` items without materialising `items`."""
    if batch_size < 1:
        raise EncoderInputError(f"batch_size must be >= 1, got {batch_size!r}")
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _update_hash(h: Any, obj: Any, str_is_path: bool) -> None:
    """Feed a canonical byte form of `obj` into hash `h` (type-tagged, so 1 != "1")."""
    if isinstance(obj, str) and not str_is_path:
        h.update(b"s" + obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EncoderInputError(
                f"cannot read file {str(path)!r}: {exc.strerror or exc}. "
                "Check the path, or pass the content itself."
            ) from exc
        h.update(b"f" + hashlib.blake2b(data, digest_size=32).digest())
    elif isinstance(obj, bytes):
        h.update(b"b" + obj)
    elif isinstance(obj, (bool, int, float)) or obj is None:
        h.update(b"n" + repr(obj).encode())
    elif isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(b"a" + str(arr.dtype).encode() + repr(arr.shape).encode() + arr.tobytes())
    elif isinstance(obj, torch.Tensor):
        _update_hash(h, obj.detach().cpu().numpy(), str_is_path)
    elif isinstance(obj, (tuple, list)):
        h.update(b"(" + str(len(obj)).encode())
        for part in obj:
            _update_hash(h, part, str_is_path)
    elif isinstance(obj, dict):
        h.update(b"{" + str(len(obj)).encode())
        for key in sorted(obj, key=repr):
            _update_hash(h, key, False)
            _update_hash(h, obj[key], str_is_path)
    elif hasattr(obj, "tobytes") and hasattr(obj, "mode") and hasattr(obj, "size"):  # PIL image
        h.update(b"i" + f"{obj.mode}{obj.size}".encode() + obj.tobytes())
    else:
        raise EncoderInputError(
            f"cannot compute a cache key for an item of type {type(obj).__name__}; "
            "pass `keys=` to encode_all or override Encoder.item_key"
        )


def content_hash(obj: Any, str_is_path: bool = False) -> str:
    """Stable hex digest of an item's content (file contents for paths, not the path)."""
    h = hashlib.blake2b(digest_size=20)
    _update_hash(h, obj, str_is_path)
    return h.hexdigest()


def _bad_arguments(cls: type, signature: inspect.Signature, kw: dict[str, Any],
                   exc: TypeError) -> str:
    """Message for constructor arguments that do not fit: the encoder, the key, valid keys."""
    import difflib

    params = list(signature.parameters)[1:]  # without self
    valid = [p for p in params if signature.parameters[p].kind not in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    name = f"{cls.__name__} (encoder {cls.registry_name!r})" if cls.registry_name else cls.__name__
    unknown = [k for k in kw if k not in params]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (f"{name} got unknown option {unknown[0]!r}{hint} Valid options: "
                f"{', '.join(valid)}")
    return f"{name}: {exc}. Valid options: {', '.join(valid)}"


def _digest(state: dict[str, torch.Tensor]) -> str:
    """blake2b of names, dtypes, shapes and bytes of a state dict."""
    h = hashlib.blake2b(digest_size=20)
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors (possibly nested in dicts/lists or a BatchEncoding) to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    if hasattr(obj, "to") and callable(obj.to):
        return obj.to(device)
    return obj


class Encoder(nn.Module):
    """Base class: raw content → vectors of shape (B, dim).

    Class attributes:
        modality: "text", "image", "audio", or any name a custom encoder chooses.
        registry_name: set by `@register_encoder(name)`; used in configs.
        str_is_path: whether a `str` item is a file path (image/audio) or content (text).
        preprocess_version: bump when preprocessing changes, so cached vectors are recomputed.
        sort_window: `encode_iter` sorts items by `sort_key` within windows of this many
            batches (when the subclass defines `sort_key`).
    """

    modality: ClassVar[str] = "generic"
    registry_name: ClassVar[str | None] = None
    str_is_path: ClassVar[bool] = False
    preprocess_version: ClassVar[int] = 1
    sort_window: ClassVar[int] = 50
    dim: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        original = cls.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(self: Encoder, *args: Any, **kw: Any) -> None:
            if "_init_kwargs" not in self.__dict__:  # only the outermost constructor records
                try:
                    bound = signature.bind(self, *args, **kw)
                except TypeError as exc:  # a typo in an encoder config: say which and the fix
                    raise EncoderConfigError(_bad_arguments(cls, signature, kw, exc)) from None
                bound.apply_defaults()
                params = dict(bound.arguments)
                params.pop(next(iter(signature.parameters)))  # self
                for name, param in signature.parameters.items():
                    if param.kind is inspect.Parameter.VAR_KEYWORD:
                        params.update(params.pop(name, {}))
                    elif param.kind is inspect.Parameter.VAR_POSITIONAL and params.pop(name, ()):
                        raise EncoderConfigError(
                            f"{cls.__name__} takes *args; encoders must use keyword arguments "
                            "so they can be saved as a config"
                        )
                object.__setattr__(self, "_init_kwargs", params)
            original(self, *args, **kw)

        cls.__init__ = __init__  # type: ignore[method-assign]

    # ----------------------------------------------------------------- to implement
    def preprocess(self, raw_batch: Sequence[Any]) -> Any:
        """Turn a list of raw items into model inputs (tensors or a dict of tensors)."""
        raise NotImplementedError(f"{type(self).__name__} must implement preprocess()")

    def forward(self, inputs: Any) -> torch.Tensor:  # (B, dim)
        """Map preprocessed inputs to a (B, dim) float tensor."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def sort_key(self, item: Any) -> int:
        """Cost of one raw item (e.g. a text's length). Subclasses that define it get their
        items batched longest first within windows of `sort_window` batches, so batches are
        padded less; vectors still come back in input order. The base class does not sort."""
        raise NotImplementedError

    @property
    def sorts_by_length(self) -> bool:
        """Whether `encode_iter` sorts items by `sort_key` (the subclass defines it)."""
        return type(self).sort_key is not Encoder.sort_key

    @property
    def frozen(self) -> bool:
        """True when no parameter requires gradients (then `encode` runs in inference mode)."""
        return not any(p.requires_grad for p in self.parameters())

    # ----------------------------------------------------------------- config
    def to_config(self) -> dict[str, Any]:
        """JSON-able dict that `Encoder.from_config` rebuilds this encoder from."""
        params = dict(self.__dict__.get("_init_kwargs", {}))
        params.pop("device", None)
        config = {"name": self.registry_name or type(self).__name__, **params}
        try:
            config = json.loads(json.dumps(config))  # tuples become lists, as after a reload
        except TypeError as exc:
            raise EncoderConfigError(
                f"{type(self).__name__}.to_config(): constructor arguments are not JSON-able "
                f"({exc}). Pass names/paths instead of objects, or override to_config()."
            ) from exc
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], **overrides: Any) -> Encoder:
        """Rebuild an encoder from `to_config()` output (looked up by name in the registry)."""
        from .registry import get_encoder_class

        params = dict(config)
        name = params.pop("name", None)
        params.update(overrides)
        if cls is Encoder:
            if name is None:
                raise EncoderConfigError(f"encoder config has no 'name' key: {config!r}")
            return get_encoder_class(name)(**params)
        return cls(**params)

    # ----------------------------------------------------------------- identity
    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def weights_digest(self) -> str:
        """Hash of all parameters and buffers: changes whenever the weights change.

        Computed once and reused while no tensor was replaced or modified in place (keyed on
        each tensor's storage and autograd version counter, which optimizer steps,
        `load_state_dict` and `.to()` all change).
        """
        state = self.state_dict()
        try:
            key: tuple | None = tuple(
                (name, t.dtype, tuple(t.shape), str(t.device), t.data_ptr(), t._version)
                for name, t in sorted(state.items()))
        except RuntimeError:  # inference tensors have no version counter: hash every time
            key = None
        cached = self.__dict__.get("_digest_cache")
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        digest = _digest(state)
        if key is not None:
            self.__dict__["_digest_cache"] = (key, digest)
        return digest

    def fingerprint(self) -> str:
        """Cache namespace: encoder class, config, preprocessing version and weights."""
        try:
            config = json.dumps(self.to_config(), sort_keys=True)
        except EncoderConfigError:
            config = repr(sorted(self.__dict__.get("_init_kwargs", {}).items()))
        h = hashlib.blake2b(digest_size=20)
        for part in (type(self).__qualname__, config, str(self.preprocess_version),
                     str(self.dim), self.weights_digest()):
            h.update(part.encode() + b"\0")
        return h.hexdigest()

    def item_key(self, item: Any) -> str:
        """Content hash of one raw item (file contents for paths)."""
        return content_hash(item, str_is_path=self.str_is_path)

    # ----------------------------------------------------------------- encoding
    def encode(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        """Preprocess and run the model on one batch.

        Keeps gradients when the encoder has trainable parameters (fine-tuning); a frozen
        encoder runs under `torch.inference_mode()`.
        """
        if len(raw_batch) == 0:
            raise EncoderInputError(f"{type(self).__name__}.encode() got an empty batch")
        return self._run(lambda: self.preprocess(list(raw_batch)), len(raw_batch))

    def prepare(self, raw_items: Sequence[Any]) -> Prepared:
        """`raw_items` made ready to be encoded by position, again and again
        (`encode_prepared`): what fine-tuning does with the catalogue at every step. The
        base class keeps the items and preprocesses each batch when asked (exactly
        `encode`); an encoder whose preprocessing is costly and sliceable (tags) does it
        once here. `None` items may be present; they must not be asked for."""
        return Prepared(self, raw_items)

    def encode_prepared(self, prepared: Prepared, positions: Sequence[int]) -> torch.Tensor:
        """`encode([raw_items[i] for i in positions])` for items made ready by `prepare`
        (the same vectors; (len(positions), dim))."""
        if len(positions) == 0:
            raise EncoderInputError(f"{type(self).__name__}.encode_prepared() got no positions")
        return self._run(lambda: prepared.inputs(positions), len(positions))

    def _run(self, inputs: Any, n: int) -> torch.Tensor:  # (n, dim)
        """forward(inputs()) on the encoder's device, without gradients when frozen, checked."""
        if self.frozen and not torch.is_inference_mode_enabled():
            with torch.inference_mode():
                out = self._run(inputs, n)
            return out.clone()  # a normal tensor again, usable in the caller's autograd graph
        out = self(_to_device(inputs(), self.device))
        if out.ndim != 2 or out.shape[0] != n or out.shape[1] != self.dim:
            raise EncoderConfigError(
                f"{type(self).__name__}.forward returned shape {tuple(out.shape)}, expected "
                f"({n}, {self.dim}); check `dim` and the pooling in forward()"
            )
        return out

    def encode_iter(
        self,
        items: Iterable[Any],
        batch_size: int = 32,
        *,
        cache: EmbeddingCache | str | os.PathLike | None = None,
        keys: Iterable[str] | None = None,
        show_progress: bool = True,
        total: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield float32 CPU tensors of shape (b, dim), b <= batch_size, streaming `items`.

        Memory is bounded by the batch size (times `sort_window` for encoders that sort).
        With `cache`, vectors already computed for the same content by an encoder with the
        same fingerprint are read back instead of encoded. Encoders with a `sort_key` (text:
        length) encode each window's items longest first, as sentence-transformers does, and
        yield the vectors in input order. Encoding runs under `torch.inference_mode()`, batch
        by batch (the caller's code between yields does not run in inference mode).
        """
        from tqdm.auto import tqdm

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EncoderInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        store = _open_cache(cache)
        session = store.session(self.fingerprint(), self.dim) if store is not None else None
        key_iter = iter(keys) if keys is not None else None
        window = batch_size * self.sort_window if self.sorts_by_length else batch_size
        was_training = self.training
        self.eval()
        bar = tqdm(total=total, disable=not show_progress, desc=f"encode {self.modality}",
                   unit="item", leave=False)
        try:
            for chunk in batched(items, window):
                chunk_keys = None
                if session is not None:
                    chunk_keys = (_take_keys(key_iter, len(chunk)) if key_iter is not None
                                  else [self.item_key(x) for x in chunk])
                out = self._encode_window(chunk, batch_size, session, chunk_keys)  # (n, dim)
                for start in range(0, len(chunk), batch_size):
                    part = out[start:start + batch_size]  # (b, dim)
                    bar.update(len(part))
                    yield part
        finally:
            bar.close()
            if session is not None:
                session.close()
            self.train(was_training)

    def _encode_window(self, items: list[Any], batch_size: int, session: Any,
                       keys: list[str] | None) -> torch.Tensor:  # (n, dim) float32 CPU
        """Vectors of `items` in their order: cache hits read back, the rest encoded in
        batches (longest first when the encoder sorts) and added to the cache."""
        if session is not None:
            found, vectors = session.lookup(keys)  # (n,) bool, (n, dim) float32
            todo = np.flatnonzero(~found)
        else:
            vectors = np.empty((len(items), self.dim), np.float32)
            todo = np.arange(len(items))
        if self.sorts_by_length and todo.size > 1:
            cost = np.array([self.sort_key(items[i]) for i in todo], dtype=np.int64)
            todo = todo[np.argsort(-cost, kind="stable")]
        for start in range(0, todo.size, batch_size):
            idx = todo[start:start + batch_size]
            with torch.inference_mode():
                fresh = self.encode([items[i] for i in idx]).float().cpu().numpy()  # (b, dim)
            vectors[idx] = fresh
        if session is not None and todo.size:
            done = np.sort(todo)
            session.add([keys[i] for i in done], vectors[done])
        return torch.from_numpy(vectors)

    def encode_all(
        self,
        items: Iterable[Any],
        batch_size: int = 32,
        *,
        cache: EmbeddingCache | str | os.PathLike | None = None,
        keys: Iterable[str] | None = None,
        show_progress: bool = True,
        shard: bool = False,
    ) -> torch.Tensor:  # (N, dim)
        """Encode every item in batches; returns a float32 CPU tensor (N, dim) in input order.

        `shard=True` under `torch.distributed` (e.g. `torchrun`, world size > 1): each rank
        encodes every world-th item into `cache` (a directory all ranks share), all ranks
        wait at a barrier, then each reads every vector back from the cache. Every rank
        must call it with the same items. Outside a process group it changes nothing.
        """
        import torch.distributed as dist

        if shard and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            if cache is None:
                raise EncoderConfigError(
                    "encode_all(shard=True) needs cache= a directory every rank can read; the "
                    "ranks exchange their vectors through it"
                )
            items, keys = list(items), None if keys is None else list(keys)
            rank, world = dist.get_rank(), dist.get_world_size()
            mine = items[rank::world]
            for _ in self.encode_iter(mine, batch_size, cache=cache,
                                      keys=None if keys is None else keys[rank::world],
                                      show_progress=show_progress and rank == 0):
                pass
            dist.barrier()
        chunks = list(self.encode_iter(items, batch_size, cache=cache, keys=keys,
                                       show_progress=show_progress))
        if not chunks:
            return torch.empty(0, self.dim)
        return torch.cat(chunks)

    def extra_repr(self) -> str:
        return f"modality={self.modality!r}, dim={self.dim}"


class Prepared:
    """Raw items ready to be encoded by position (`Encoder.prepare`). This base version
    preprocesses the asked-for items on each call; subclasses may precompute."""

    def __init__(self, encoder: Encoder, raw_items: Sequence[Any]) -> None:
        self.encoder, self.raw = encoder, list(raw_items)

    def __len__(self) -> int:
        return len(self.raw)

    def inputs(self, positions: Sequence[int]) -> Any:
        """`encoder.preprocess` of the items at `positions`."""
        return self.encoder.preprocess([self.raw[int(i)] for i in positions])


def _take_keys(key_iter: Iterator[str], n: int) -> list[str]:
    keys = [k for _, k in zip(range(n), key_iter)]
    if len(keys) < n:
        raise EncoderInputError("keys has fewer entries than items; pass one cache key per item")
    return keys


def _open_cache(cache: Any) -> EmbeddingCache | None:
    if cache is None:
        return None
    from .cache import EmbeddingCache

    return cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
