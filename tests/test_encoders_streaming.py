"""Streaming `encode_iter` over a generator keeps memory flat, with and without the cache."""

from __future__ import annotations

import tracemalloc

import pytest
import torch

from encoders import Encoder
from encoders.cache import EmbeddingCache

BATCH = 1024


class CheapEncoder(Encoder):
    """Integer item i → i * ramp (dim floats); counts the items it encodes."""

    modality = "number"

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("ramp", torch.linspace(0.0, 1.0, dim))
        self.items_seen = 0

    def preprocess(self, raw_batch):
        return torch.tensor(raw_batch, dtype=torch.float32)[:, None]  # (B, 1)

    def forward(self, inputs):
        self.items_seen += len(inputs)
        return inputs * self.ramp  # (B, dim)


def stream(n: int, cache) -> tuple[int, int, float]:
    """Encode range(n) lazily; returns (peak traced bytes above the start, items, checksum)."""
    enc = CheapEncoder()
    count, checksum = 0, 0.0
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for out in enc.encode_iter((i for i in range(n)), BATCH, cache=cache, show_progress=False):
            assert out.shape[1] == 32 and out.shape[0] <= BATCH  # (b, dim)
            count += out.shape[0]
            checksum += float(out[:, -1].double().sum())
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert enc.items_seen == n  # every cache here starts empty: all items are encoded
    return peak, count, checksum


@pytest.mark.parametrize("use_cache", [pytest.param(False, id="no-cache"),
                                       pytest.param(True, id="cache", marks=pytest.mark.slow)])
def test_streaming_memory_does_not_grow_with_n(tmp_path, use_cache):
    def cache(name: str):
        return EmbeddingCache(tmp_path / name) if use_cache else None

    stream(2 * BATCH, cache("warmup"))  # first-call imports and caches are not the stream's
    small, n_small, _ = stream(20_000, cache("small"))
    large, n_large, checksum = stream(100_000, cache("large"))
    assert (n_small, n_large) == (20_000, 100_000)
    assert checksum == pytest.approx(sum(range(100_000)))
    mib = 1 << 20
    # 5x the items, same peak: the growth allowed is far below what 80k vectors would take
    # (80_000 * 32 * 4 bytes = 9.8 MiB) or what an index of 80k keys would take (~15 MiB).
    assert large - small < 1 * mib, f"peak {small / mib:.2f} MiB at 20k, {large / mib:.2f} MiB at 100k"
    assert large < 8 * mib, f"peak {large / mib:.2f} MiB"

    if use_cache:  # everything was written and reads back, without encoding anything
        enc = CheapEncoder()
        store = EmbeddingCache(tmp_path / "large")
        assert len(store) == 100_000
        total = sum(float(out[:, -1].double().sum())
                    for out in enc.encode_iter(iter(range(100_000)), BATCH, cache=store, show_progress=False))
        assert enc.items_seen == 0 and total == pytest.approx(checksum)
