"""The weight-free encoders: text-hash, image-stats, audio-mel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders import Encoder, EncoderConfigError, EncoderInputError, get_encoder, list_encoders
from encoders.simple import AudioMelEncoder, ImageStatsEncoder, TextHashEncoder

SR = 16000
TEXTS = ["A bright upbeat song", "dark gloomy ambient", "", "bright upbeat song a", "Ünïcode wörds ok"]


def _images(n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(20 + 7 * i, 30 + 3 * i, 3), dtype=np.uint8) for i in range(n)]


def _waves(n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    return [(0.4 * np.sin(2 * np.pi * (200 + 150 * i) * t[: SR // (i + 1)])
             + 0.05 * rng.normal(size=SR // (i + 1))).astype(np.float32) for i in range(n)]


CASES = [
    ("text-hash", TextHashEncoder, "text", TEXTS),
    ("image-stats", ImageStatsEncoder, "image", _images()),
    ("audio-mel", AudioMelEncoder, "audio", _waves()),
]


def test_registered_with_modalities():
    for name, cls, modality, _ in CASES:
        assert name in list_encoders()
        enc = get_encoder(name)
        assert isinstance(enc, cls) and enc.modality == modality
        assert list(enc.parameters()) == [] and enc.state_dict() == {}  # weight-free
    assert (TextHashEncoder.str_is_path, ImageStatsEncoder.str_is_path, AudioMelEncoder.str_is_path) == (
        False, True, True)


@pytest.mark.parametrize("name, cls, modality, items", CASES)
def test_shape_dtype_determinism_and_batch_independence(name, cls, modality, items):
    enc = get_encoder(name)
    out = enc.encode(items)
    assert out.shape == (len(items), enc.dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    np.testing.assert_array_equal(out.numpy(), get_encoder(name).encode(items).numpy())
    single = torch.cat([enc.encode([x]) for x in items])
    np.testing.assert_allclose(out.numpy(), single.numpy(), atol=1e-6)
    assert not np.allclose(out[0].numpy(), out[1].numpy())  # different inputs, different vectors


@pytest.mark.parametrize("name, cls, modality, items", CASES)
def test_config_roundtrip(name, cls, modality, items):
    kwargs = {"text-hash": {"dim": 64, "ngram_range": (1, 3)}, "image-stats": {"size": 24, "grid": 3},
              "audio-mel": {"n_mels": 24, "max_seconds": 0.5}}[name]
    enc = get_encoder(name, **kwargs)
    config = enc.to_config()
    assert json.loads(json.dumps(config)) == config  # JSON form is the config itself
    clone = Encoder.from_config(json.loads(json.dumps(config)))
    assert type(clone) is cls and clone.dim == enc.dim and clone.to_config() == config
    assert clone.fingerprint() == enc.fingerprint()
    np.testing.assert_array_equal(clone.encode(items).numpy(), enc.encode(items).numpy())


def test_dims_follow_params():
    assert get_encoder("text-hash", dim=100).dim == 100
    assert get_encoder("image-stats").dim == 4 * 4 * 6 + 12 + 1 + 2 * 8 + 3
    assert get_encoder("image-stats", grid=2, hue_bins=6, edge_bins=4).dim == 2 * 2 * 6 + 6 + 1 + 8 + 3
    assert get_encoder("audio-mel", n_mels=20).dim == 2 * 20 + 8


def test_text_hash_features():
    enc = get_encoder("text-hash", dim=512)
    out = enc.encode(TEXTS).numpy()
    np.testing.assert_allclose(np.linalg.norm(out[[0, 1, 3, 4]], axis=1), 1.0, rtol=1e-5)
    assert not out[2].any()  # empty text → zero vector
    same = enc.encode(["BRIGHT, upbeat!", "bright upbeat"]).numpy()
    np.testing.assert_array_equal(same[0], same[1])  # case and punctuation are ignored
    cos = out @ out.T
    assert cos[0, 3] > 0.6 > cos[0, 1]  # shared words ≫ disjoint words
    unigrams = get_encoder("text-hash", dim=512, ngram_range=[1, 1], normalize=False)
    raw = unigrams.encode(["a a a a b"]).numpy()[0]  # sublinear tf: 1 + log(4), 1
    np.testing.assert_allclose(sorted(np.abs(raw[raw != 0])), [1.0, 1 + np.log(4)], rtol=1e-6)


def test_text_hash_is_stable_across_processes():
    enc = get_encoder("text-hash", dim=1000, ngram_range=[1, 1], normalize=False)
    vec = enc.encode(["hello world"]).numpy()[0]
    assert np.flatnonzero(vec).tolist() == [191, 552] and vec[[191, 552]].tolist() == [1.0, 1.0]  # pinned
    code = ("import encoders; e = encoders.get_encoder('text-hash', dim=64); "
            "print(e.encode(['stable hashing please']).numpy()[0].tolist())")
    root = Path(__file__).resolve().parents[1]
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=root, env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    here = get_encoder("text-hash", dim=64).encode(["stable hashing please"]).numpy()[0]
    np.testing.assert_array_equal(np.array(json.loads(other), np.float32), here)


def test_image_path_equals_array_and_pil(tmp_path):
    from PIL import Image

    enc = get_encoder("image-stats")
    arr = _images(1)[0]
    Image.fromarray(arr).save(tmp_path / "x.png")
    ref = enc.encode([arr]).numpy()
    np.testing.assert_array_equal(enc.encode([str(tmp_path / "x.png")]).numpy(), ref)
    np.testing.assert_array_equal(enc.encode([tmp_path / "x.png"]).numpy(), ref)
    np.testing.assert_array_equal(enc.encode([Image.fromarray(arr)]).numpy(), ref)
    gray = enc.encode([arr.mean(-1).astype(np.uint8)])  # (H, W) grey images work too
    assert gray.shape == (1, enc.dim)


def test_image_features_see_colour_and_edges():
    enc = get_encoder("image-stats")
    flat_red = np.zeros((32, 32, 3), np.uint8)
    flat_red[..., 0] = 220
    flat_blue = flat_red[..., ::-1].copy()
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[::4] = 255
    red, blue, striped = enc.encode([flat_red, flat_blue, stripes]).numpy()
    hue = slice(96, 96 + 12)
    assert np.argmax(red[hue]) == 0 and np.argmax(blue[hue]) == 8  # hue bins of 30°: 0° red, 240° blue
    orient = slice(96 + 13, 96 + 13 + 8)
    assert np.argmax(striped[orient]) in (3, 4)  # horizontal stripes: vertical gradients (≈ π/2)
    assert striped[-1] > red[-1]  # more gradient energy


def test_audio_path_equals_array_and_tuple(tmp_path):
    import soundfile as sf

    enc = get_encoder("audio-mel")
    wave = _waves(1)[0]
    sf.write(tmp_path / "x.wav", wave, SR, subtype="FLOAT")
    ref = enc.encode([wave]).numpy()
    np.testing.assert_allclose(enc.encode([str(tmp_path / "x.wav")]).numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(enc.encode([(wave, SR)]).numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(enc.encode([torch.from_numpy(wave)]).numpy(), ref, atol=1e-6)
    sf.write(tmp_path / "pcm.wav", wave, SR)  # 16-bit PCM: quantised, nearly equal
    np.testing.assert_allclose(enc.encode([tmp_path / "pcm.wav"]).numpy(), ref, atol=2e-3)


def test_audio_features_see_pitch_crop_and_short_clips():
    enc = get_encoder("audio-mel", max_seconds=0.5)
    t = np.arange(SR) / SR
    low, high = (0.5 * np.sin(2 * np.pi * f * t).astype(np.float32) for f in (200.0, 2000.0))
    out = enc.encode([low, high, low[:100], np.zeros(SR, np.float32)]).numpy()
    shape = slice(0, enc.n_mels)
    assert np.argmax(out[0, shape]) < np.argmax(out[1, shape])  # pitch moves the spectral peak
    assert out[1, 2 * enc.n_mels] > out[0, 2 * enc.n_mels]  # brighter centroid
    assert np.isfinite(out).all()  # a 100-sample clip and silence are fine
    np.testing.assert_array_equal(out[0], enc.encode([np.concatenate([low, high])]).numpy()[0])  # cropped
    resampled = enc.encode([(low[::2].copy(), SR // 2)]).numpy()[0]  # 8 kHz input → 16 kHz
    assert resampled @ out[0] / np.linalg.norm(resampled) / np.linalg.norm(out[0]) > 0.99


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(EncoderInputError, match="item 1 is a NoneType"):
        get_encoder("text-hash").encode(["ok", None])
    with pytest.raises(EncoderInputError, match="not found"):
        get_encoder("image-stats").encode([str(tmp_path / "missing.png")])
    with pytest.raises(EncoderInputError, match="uint8"):
        get_encoder("image-stats").encode([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(EncoderInputError, match="NaN"):
        get_encoder("audio-mel").encode([np.full(100, np.nan, np.float32)])
    with pytest.raises(EncoderInputError, match="empty batch"):
        get_encoder("audio-mel").encode([])


@pytest.mark.parametrize("name, kwargs, match", [
    ("text-hash", {"dim": 0}, "dim"),
    ("text-hash", {"ngram_range": (2, 1)}, "ngram_range"),
    ("text-hash", {"ngram_range": "12"}, "ngram_range"),
    ("text-hash", {"ngram_range": [0, 1]}, "ngram_range"),
    ("text-hash", {"normalize": "yes"}, "normalize"),
    ("image-stats", {"grid": 64}, "grid=64"),
    ("image-stats", {"size": 2.5}, "size"),
    ("audio-mel", {"sample_rate": 100}, "sample_rate"),
    ("audio-mel", {"max_seconds": 0}, "max_seconds"),
    ("audio-mel", {"n_mels": 500}, "n_mels"),
])
def test_bad_config_names_the_value(name, kwargs, match):
    with pytest.raises(EncoderConfigError, match=match):
        get_encoder(name, **kwargs)
