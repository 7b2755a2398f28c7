"""On-disk embedding cache: hits, namespaces, corruption, concurrent and killed writers, speed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from encoders import CacheError, Encoder, EncoderInputError
from encoders.cache import CacheWarning, EmbeddingCache

TESTS_DIR = Path(__file__).resolve().parent


class CountingEncoder(Encoder):
    """Deterministic per-item encoder (hash features, elementwise affine) that counts work."""

    modality = "text"

    def __init__(self, dim: int = 8, seed: int = 0, delay: float = 0.0) -> None:
        super().__init__()
        if not 1 <= dim <= 64:
            raise ValueError(f"dim must be in 1..64, got {dim}")
        self.dim, self.delay = dim, delay
        gen = torch.Generator().manual_seed(seed)
        self.scale = nn.Parameter(torch.randn(dim, generator=gen))
        self.shift = nn.Parameter(torch.randn(dim, generator=gen))
        self.calls = 0
        self.items_seen = 0

    def preprocess(self, raw_batch):
        rows = [np.frombuffer(hashlib.blake2b(str(x).encode(), digest_size=64).digest(), np.uint8)
                for x in raw_batch]
        return torch.from_numpy(np.stack(rows)[:, : self.dim].astype(np.float32) / 255.0)

    def forward(self, inputs):
        self.calls += 1
        self.items_seen += len(inputs)
        if self.delay:
            time.sleep(self.delay * len(inputs))
        return inputs * self.scale + self.shift  # elementwise: bit-identical for any batching


def items(n: int, start: int = 0) -> list[str]:
    return [f"item-{i}" for i in range(start, start + n)]


def expected(texts: list[str], **kw) -> torch.Tensor:
    return CountingEncoder(**kw).encode_all(texts, batch_size=64, show_progress=False)


def chunk_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/chunk-*.emb"))


def run_clean(enc: Encoder, texts: list[str], cache, **kw) -> torch.Tensor:
    """encode_all that fails on any CacheWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        return enc.encode_all(texts, cache=cache, show_progress=False, **kw)


# --------------------------------------------------------------------------- basic behaviour
def test_second_run_hits_cache_and_returns_identical_vectors(tmp_path):
    texts = items(50) + items(5)  # duplicates too
    first = CountingEncoder()
    a = run_clean(first, texts, tmp_path, batch_size=7)
    assert first.items_seen == 50  # repeats are served from the session's pending buffer
    assert torch.equal(a, expected(texts))

    second = CountingEncoder()  # a fresh instance, same config and weights
    b = run_clean(second, texts, str(tmp_path), batch_size=16)
    assert second.calls == 0
    assert torch.equal(a, b) and b.dtype == torch.float32 and b.shape == (55, 8)

    third = CountingEncoder()  # an EmbeddingCache object works the same
    assert torch.equal(run_clean(third, texts, EmbeddingCache(tmp_path)), a) and third.calls == 0


def test_only_new_items_are_encoded(tmp_path):
    run_clean(CountingEncoder(), items(30), tmp_path)
    enc = CountingEncoder()
    out = run_clean(enc, items(30) + items(12, start=30), tmp_path, batch_size=8)
    assert enc.items_seen == 12
    assert torch.equal(out, expected(items(42)))


def test_explicit_keys_name_the_entries(tmp_path):
    enc = CountingEncoder()
    a = run_clean(enc, items(6), tmp_path, keys=[f"id{i}" for i in range(6)])
    again = CountingEncoder()
    b = run_clean(again, items(6), tmp_path, keys=(f"id{i}" for i in range(6)))
    assert again.calls == 0 and torch.equal(a, b)
    with pytest.raises(EncoderInputError, match="cache keys must be str.*position 0"):
        CountingEncoder().encode_all(items(2), cache=tmp_path, keys=[1, 2], show_progress=False)


def test_other_config_or_weights_use_another_namespace(tmp_path):
    base = CountingEncoder(seed=0)
    a = run_clean(base, items(20), tmp_path)

    other_seed = CountingEncoder(seed=1)
    b = run_clean(other_seed, items(20), tmp_path)
    assert other_seed.items_seen == 20 and not torch.equal(a, b)
    assert torch.equal(b, expected(items(20), seed=1))

    edited = CountingEncoder(seed=0)
    with torch.no_grad():
        edited.scale[0] += 1.0  # same config, new weights (e.g. after fine-tuning)
    c = run_clean(edited, items(20), tmp_path)
    assert edited.items_seen == 20 and not torch.equal(a[:, 0], c[:, 0])
    assert torch.equal(a[:, 1:], c[:, 1:])

    wider = CountingEncoder(dim=12)
    assert run_clean(wider, items(20), tmp_path).shape == (20, 12) and wider.items_seen == 20
    fingerprints = {base.fingerprint(), other_seed.fingerprint(), edited.fingerprint(), wider.fingerprint()}
    assert len(fingerprints) == 4
    assert set(EmbeddingCache(tmp_path).fingerprints()) == fingerprints


def test_session_flushes_every_n_vectors_and_finds_pending(tmp_path):
    cache = EmbeddingCache(tmp_path, flush_every=100)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((250, 4)).astype(np.float32)
    keys = [f"k{i}" for i in range(250)]
    with cache.session("fp", 4) as session:
        for lo in range(0, 250, 30):
            session.add(keys[lo:lo + 30], vecs[lo:lo + 30])
            assert session._n_pending < 100  # memory bound: flushed at the threshold
        assert cache.stats()["chunks"] == 2
        found, got = session.lookup(["k249", "nope"])  # still pending, absent
        assert found.tolist() == [True, False]
        assert np.array_equal(got[0], vecs[249]) and not got[1].any()
    assert session.written == 250 and cache.stats()["chunks"] == 3 and len(cache) == 250
    with cache.session("fp", 4) as session:
        found, got = session.lookup(keys[::-1])
    assert found.all() and np.array_equal(got, vecs[::-1])
    assert sorted(k for k, _ in cache.entries("fp")) == sorted(keys)


def test_compact_merges_small_runs(tmp_path):
    enc = CountingEncoder()
    for lo in range(0, 50, 10):  # five runs, five chunks of 15, 10, 10, 10, 10 new items
        run_clean(CountingEncoder(), items(15, start=lo), tmp_path)
    first = chunk_files(tmp_path)[0]  # a duplicate, as two concurrent writers would leave
    (first.parent / "chunk-ffffffff-1-abc.emb").write_bytes(first.read_bytes())
    cache = EmbeddingCache(tmp_path, flush_every=40)
    assert cache.stats()["chunks"] == 6 and len(cache) == 55 + 15
    assert cache.compact(enc.fingerprint()) == 6
    stats = cache.stats()
    assert stats["chunks"] == 2 and len(cache) == 55
    again = CountingEncoder()
    assert torch.equal(run_clean(again, items(55), cache), expected(items(55))) and again.calls == 0
    assert cache.compact(enc.fingerprint()) == 2 and cache.compact("missing") == 0


def test_bad_inputs_raise_errors_that_name_the_value(tmp_path):
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(CacheError, match="'../evil'"):
        cache.session("../evil", 4)
    with pytest.raises(CacheError, match="dim must be a positive int, got 0"):
        cache.session("fp", 0)
    with pytest.raises(CacheError, match="flush_every must be a positive int, got 0"):
        EmbeddingCache(tmp_path, flush_every=0)
    session = cache.session("fp", 4)
    with pytest.raises(CacheError, match=r"shape \(2, 3\).*expected \(2, 4\)"):
        session.add(["a", "b"], np.zeros((2, 3)))
    with pytest.warns(CacheWarning, match="not caching 1 vectors with NaN"):
        session.add(["a", "b"], np.array([[np.nan] * 4, [1.0] * 4]))
    session.close()
    session.close()  # idempotent
    with pytest.raises(CacheError, match="session is closed"):
        session.lookup(["a"])
    with cache.session("fp", 4) as session:
        assert session.lookup(["a", "b"])[0].tolist() == [False, True]


def test_default_directory_env_var_stats_repr_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIREC_CACHE_DIR", str(tmp_path / "env"))
    cache = EmbeddingCache()
    assert cache.directory == tmp_path / "env" and str(tmp_path / "env") in repr(cache)
    assert len(cache) == 0 and cache.stats()["fingerprints"] == {}

    a, b = CountingEncoder(seed=0), CountingEncoder(seed=1)
    run_clean(a, items(10), cache)
    run_clean(b, items(7), cache)
    (cache.directory / "notes.txt").write_text("not ours")
    stats = cache.stats()
    assert stats["entries"] == 17 == len(cache)
    assert stats["fingerprints"][a.fingerprint()]["entries"] == 10
    assert stats["fingerprints"][b.fingerprint()]["dim"] == 8

    cache.clear(a.fingerprint())
    assert cache.fingerprints() == [b.fingerprint()] and len(cache) == 7
    cache.clear()
    assert len(cache) == 0 and (cache.directory / "notes.txt").read_text() == "not ours"
    fresh = CountingEncoder(seed=1)
    run_clean(fresh, items(7), cache)
    assert fresh.items_seen == 7  # really gone


def test_unwritable_cache_warns_and_still_returns_vectors(tmp_path, monkeypatch):
    def disk_full(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EmbeddingCache, "_write_chunk", disk_full)
    enc = CountingEncoder()
    with pytest.warns(CacheWarning, match="No space left on device.*not cached"):
        out = enc.encode_all(items(10), cache=tmp_path, show_progress=False)
    assert torch.equal(out, expected(items(10))) and len(EmbeddingCache(tmp_path)) == 0
    with pytest.raises(CacheError, match="cache directory must be a path, got int 3"):
        EmbeddingCache(3)


def test_cache_object_pickles_as_settings(tmp_path):
    import pickle

    cache = EmbeddingCache(tmp_path, flush_every=7)
    run_clean(CountingEncoder(), items(5), cache)
    clone = pickle.loads(pickle.dumps(cache))  # e.g. handed to a worker process
    assert (clone.directory, clone.flush_every) == (tmp_path, 7) and len(clone) == 5


# --------------------------------------------------------------------------- dims
def test_dim_mismatch_raises_with_the_fix(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.session("fp", 8).close()
    with pytest.raises(CacheError, match=re.escape(f"clear the cache dir {str(tmp_path / 'fp')!r}")) as info:
        cache.session("fp", 16)
    assert "8-dim" in str(info.value) and "16-dim" in str(info.value)

    enc = CountingEncoder()
    run_clean(enc, items(3), tmp_path)
    meta = tmp_path / enc.fingerprint() / "meta.json"
    meta.write_text(json.dumps({"format": 1, "dim": 5, "dtype": "float32"}))
    with pytest.raises(CacheError, match="holds 5-dim vectors but this encoder produces 8-dim"):
        CountingEncoder().encode_all(items(3), cache=tmp_path, show_progress=False)


def test_chunk_with_wrong_dim_is_skipped(tmp_path):
    cache = EmbeddingCache(tmp_path)
    with cache.session("small", 4) as s:
        s.add(["a"], np.ones((1, 4)))
    with cache.session("big", 8) as s:
        s.add(["b"], np.ones((1, 8)))
    stray = next((tmp_path / "small").glob("chunk-*.emb"))
    moved = tmp_path / "big" / stray.name
    os.replace(stray, moved)
    warns = pytest.warns(CacheWarning, match=re.escape(moved.name) + r".*4-dim vectors, expected 8")
    with warns, cache.session("big", 8) as s:
        found, _ = s.lookup(["a", "b"])
    assert found.tolist() == [False, True] and not moved.exists()


# --------------------------------------------------------------------------- corruption
def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) - 7]
    elif how == "empty":
        data = bytearray()
    elif how == "vector-byte":
        data[-5] ^= 0x10
    elif how == "key-byte":
        data[data.index(b'["') + 5] ^= 0x01
    elif how == "header-digit":
        pos = data.index(b'"dim": ') + len(b'"dim": ')
        data[pos] = ord("9")
    elif how == "magic":
        data[0] ^= 0xFF
    elif how == "append":
        data += b"\0" * 4
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "empty", "vector-byte", "key-byte", "header-digit",
                                 "magic", "append"])
def test_corrupt_chunk_warns_recomputes_and_heals(tmp_path, how):
    texts = items(40)
    truth = expected(texts)
    run_clean(CountingEncoder(), texts, tmp_path)
    (chunk,) = chunk_files(tmp_path)
    _corrupt(chunk, how)

    enc = CountingEncoder()
    with pytest.warns(CacheWarning, match=re.escape(chunk.name)):
        out = enc.encode_all(texts, cache=tmp_path, show_progress=False)
    assert torch.equal(out, truth) and enc.items_seen == 40  # recomputed, correct
    assert not chunk.exists()  # the bad file is gone, the rewritten chunk is valid

    later = CountingEncoder()
    assert torch.equal(run_clean(later, texts, tmp_path), truth) and later.calls == 0


def test_no_single_byte_flip_is_read_back_as_valid(tmp_path):
    """Flip each byte of a chunk in turn: every lookup gives the true vector or a miss."""
    cache = EmbeddingCache(tmp_path / "c")
    keys = ["a", "bb", "ccc"]
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4) + 0.5
    with cache.session("fp", 4) as s:
        s.add(keys, vecs)
    (path,) = chunk_files(tmp_path / "c")
    original = path.read_bytes()
    misses = 0
    for pos in range(len(original)):
        data = bytearray(original)
        data[pos] ^= 0x41
        path.write_bytes(bytes(data))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with EmbeddingCache(tmp_path / "c").session("fp", 4) as s:
                found, got = s.lookup(keys + ["zz"])
        assert np.array_equal(got[found], np.vstack([vecs, np.zeros((1, 4))])[found]), pos
        if not found[:3].all():
            misses += 1
            assert any(path.name in str(w.message) for w in caught), pos
    assert misses == len(original)  # every flip detected (the padding is checked too)


# --------------------------------------------------------------------------- processes
def _child(code: str) -> subprocess.Popen:
    script = f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r})\n{code}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def child_encode(cache_dir: str, start: int, stop: int, go: str, flush_every: int) -> None:
    """Run in a subprocess: wait for the start signal, then encode items[start:stop]."""
    torch.set_num_threads(1)
    enc = CountingEncoder()
    order = np.random.default_rng(start).permutation(np.arange(start, stop))
    texts = [f"item-{i}" for i in order]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    enc.encode_all(texts, batch_size=16, cache=EmbeddingCache(cache_dir, flush_every=flush_every),
                   show_progress=False)


def _assert_every_entry_correct(cache_dir: Path, fingerprint: str, truth: dict[str, np.ndarray]) -> int:
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for key, vec in EmbeddingCache(cache_dir).entries(fingerprint):
            assert np.array_equal(vec, truth[key]), key
            seen += 1
    return seen


@pytest.mark.slow
def test_two_processes_writing_the_same_fingerprint(tmp_path):
    n = 1200
    texts = items(n)
    truth_rows = expected(texts).numpy()
    truth = dict(zip(map(CountingEncoder().item_key, texts), truth_rows))
    fingerprint = CountingEncoder().fingerprint()
    go = tmp_path / "go"
    procs = [
        _child(f"from test_encoders_cache import child_encode; "
               f"child_encode({str(tmp_path / 'cache')!r}, {lo}, {hi}, {str(go)!r}, 25)")
        for lo, hi in [(0, 800), (400, n)]  # overlapping halves, different orders
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.touch()
    reads = 0
    while any(p.poll() is None for p in procs):  # meanwhile, read as a third process would
        if (tmp_path / "cache" / fingerprint).exists():
            with EmbeddingCache(tmp_path / "cache").session(fingerprint, 8) as s:
                found, got = s.lookup(list(truth))
            assert np.array_equal(got[found], truth_rows[found])
            reads += int(found.sum())
        time.sleep(0.01)
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err
    assert _assert_every_entry_correct(tmp_path / "cache", fingerprint, truth) >= n
    enc = CountingEncoder()
    assert torch.equal(run_clean(enc, texts, tmp_path / "cache"), expected(texts)) and enc.calls == 0


def child_slow_writer(cache_dir: str, n: int, pause: str) -> None:
    """Run in a subprocess: encode, pausing inside the 6th file write ("write": after half of
    the bytes, printing "paused") or before every fsync ("fsync": between write and rename)."""
    import builtins

    import encoders.cache

    real_fsync, writes = os.fsync, [0]

    def slow_fsync(fd: int) -> None:
        time.sleep(0.05)
        real_fsync(fd)

    class SlowFile:
        def __init__(self, f) -> None:
            self.f = f

        def write(self, data) -> int:
            data = bytes(data)
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            writes[0] += 1
            if writes[0] == 6:
                print("paused", flush=True)
                time.sleep(60)
            return self.f.write(data[len(data) // 2:])

        def __getattr__(self, name: str):
            return getattr(self.f, name)

        def __enter__(self) -> SlowFile:
            return self

        def __exit__(self, *exc) -> None:
            self.f.close()

    def slow_open(path, mode="r", *args, **kw):
        f = builtins.open(path, mode, *args, **kw)  # noqa: SIM115 (closed by SlowFile)
        return SlowFile(f) if ("w" in mode or "x" in mode) else f

    if pause == "fsync":
        os.fsync = slow_fsync
    else:
        encoders.cache.open = slow_open  # shadows the builtin inside the cache module only
    torch.set_num_threads(1)
    print("ready", flush=True)
    CountingEncoder().encode_all(items(n), batch_size=8, cache=EmbeddingCache(cache_dir, flush_every=16),
                                 show_progress=False)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.slow
@pytest.mark.parametrize("pause", ["write", "fsync"])
def test_writer_killed_mid_write_leaves_nothing_read_as_valid(tmp_path, pause):
    n = 400
    texts = items(n)
    truth = dict(zip(map(CountingEncoder().item_key, texts), expected(texts).numpy()))
    fingerprint = CountingEncoder().fingerprint()
    ns_dir = tmp_path / fingerprint
    proc = _child(f"from test_encoders_cache import child_slow_writer; "
                  f"child_slow_writer({str(tmp_path)!r}, {n}, {pause!r})")
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    if pause == "write":  # deterministic: the child is blocked half-way through a write
        assert proc.stdout.readline().strip() == "paused", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # kill while a temp file exists
        names = os.listdir(ns_dir) if ns_dir.exists() else []
        if sum(x.startswith("chunk-") for x in names) >= 3 and any(x.startswith(".tmp-") for x in names):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.0005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    stored = _assert_every_entry_correct(tmp_path, fingerprint, truth)  # no CacheWarning either
    assert 16 <= stored < n
    temps = list(ns_dir.glob(".tmp-*"))
    assert temps, "the kill should have left an unfinished temp file"
    enc = CountingEncoder()
    assert torch.equal(run_clean(enc, texts, tmp_path), expected(texts))  # temp file ignored
    assert enc.items_seen == n - stored

    for tmp in temps:  # once stale, leftovers of dead writers are cleaned up
        os.utime(tmp, (time.time() - 7200, time.time() - 7200))
    run_clean(CountingEncoder(), texts, tmp_path)
    assert not list(ns_dir.glob(".tmp-*"))


def test_partial_temp_file_is_never_read(tmp_path):
    texts = items(20)
    enc = CountingEncoder()
    run_clean(enc, texts, tmp_path)
    ns_dir = tmp_path / enc.fingerprint()
    (chunk,) = chunk_files(tmp_path)
    data = chunk.read_bytes()
    chunk.unlink()
    (ns_dir / f".tmp-{os.getpid()}-deadbeef.part").write_bytes(data[: len(data) // 2])
    (ns_dir / f".tmp-{os.getpid()}-cafef00d.part").write_bytes(data)  # complete, never renamed
    again = CountingEncoder()
    assert torch.equal(run_clean(again, texts, tmp_path), expected(texts))
    assert again.items_seen == 20 and EmbeddingCache(tmp_path).stats()["entries"] == 20


# --------------------------------------------------------------------------- speed
def test_second_run_encodes_nothing_and_returns_the_same_vectors(tmp_path):
    """The speed-up of a warm cache comes from not calling the encoder at all (speed itself
    is measured in benchmarks/speed.py, not asserted here)."""
    texts = items(2000)
    slow = CountingEncoder()
    first = slow.encode_all(texts, batch_size=64, cache=tmp_path, show_progress=False)
    assert slow.calls > 0
    warm_enc = CountingEncoder()
    second = warm_enc.encode_all(texts, batch_size=64, cache=tmp_path, show_progress=False)
    assert warm_enc.calls == 0 and torch.equal(first, second)
