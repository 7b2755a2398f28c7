"""AudioEncoder on tiny random wav2vec2 configs (saved to disk, loaded by path)."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import torch

from encoders import Encoder, EncoderConfigError, EncoderInputError, MissingBackendError, get_encoder

transformers = pytest.importorskip("transformers")

SR = 16000
TINY_W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=(32, 32), conv_kernel=(10, 3), conv_stride=(5, 2),
                num_feat_extract_layers=2, num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2)


def _save_tiny(path, **extra) -> str:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY_W2V, **extra))
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def group_dir(tmp_path_factory) -> str:  # wav2vec2-base style: group norm in the feature encoder
    return _save_tiny(tmp_path_factory.mktemp("w2v-group"))


@pytest.fixture(scope="module")
def layer_dir(tmp_path_factory) -> str:  # wav2vec2-large-lv60 style: layer norm, attention mask
    return _save_tiny(tmp_path_factory.mktemp("w2v-layer"), do_stable_layer_norm=True,
                      feat_extract_norm="layer")


@pytest.fixture(scope="module")
def enc(group_dir):
    return get_encoder("audio", model_name_or_path=group_dir, max_seconds=2.0, device="cpu")


@pytest.fixture(scope="module")
def enc_layer(layer_dir):
    return get_encoder("audio", model_name_or_path=layer_dir, max_seconds=2.0, device="cpu")


def _tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:  # (T,)
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(int(0.3 * SR))).astype(np.float32)
    return [_tone(440, 0.5), _tone(220, 0.25) + _tone(330, 0.25, amp=0.2), noise]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def test_shape_dtype_norm(enc, enc_layer, clips):
    for e in (enc, enc_layer):
        out = e.encode(clips)
        assert e.modality == "audio" and e.dim == 32
        assert out.shape == (3, 32) and out.dtype == torch.float32
        np.testing.assert_allclose(_np(out.norm(dim=1)), 1.0, atol=1e-5)
    assert enc.per_clip and not enc_layer.per_clip


def test_deterministic_in_eval(enc, enc_layer, clips):
    for e in (enc, enc_layer):
        with torch.no_grad():
            np.testing.assert_array_equal(_np(e.encode(clips)), _np(e.encode(clips)))


@pytest.mark.parametrize("which", ["enc", "enc_layer"])
def test_batch_equals_one_by_one(which, request, clips):
    e = request.getfixturevalue(which)
    with torch.no_grad():
        batch = e.encode(clips)  # clips of different lengths: padding must not leak in
        single = torch.cat([e.encode([c]) for c in clips])
    np.testing.assert_allclose(_np(batch), _np(single), atol=1e-5)


def test_masked_mean_pools_valid_frames_only(enc_layer, clips):
    inputs = enc_layer.preprocess(clips[:1])
    with torch.no_grad():
        hidden = enc_layer.model(inputs["input_values"]).last_hidden_state  # (1, F, 32)
        expected = torch.nn.functional.normalize(hidden.mean(1), dim=1)
    assert int(enc_layer.frame_lengths(inputs["lengths"])[0]) == hidden.shape[1]
    np.testing.assert_allclose(_np(enc_layer.encode(clips[:1])), _np(expected), atol=1e-5)


def test_config_roundtrip_same_outputs(enc, clips, group_dir):
    config = json.loads(json.dumps(enc.to_config()))
    assert config == {"name": "audio", "model_name_or_path": group_dir, "backend": "transformers",
                      "bundle": "WAV2VEC2_BASE", "sample_rate": SR, "max_seconds": 2.0,
                      "normalize": True, "normalize_waveform": None}
    clone = Encoder.from_config(config, device="cpu")
    assert clone.weights_digest() == enc.weights_digest()
    np.testing.assert_allclose(_np(clone.encode(clips)), _np(enc.encode(clips)), atol=1e-6)


def test_stereo_resampled_and_file_roundtrip(enc, tmp_path):
    sf = pytest.importorskip("soundfile")
    sr = 22050
    stereo = np.stack([_tone(440, 0.5, sr), _tone(660, 0.5, sr, amp=0.25)], axis=1)  # (T, 2)
    out = enc.encode([(stereo, sr)])
    assert out.shape == (1, 32) and torch.isfinite(out).all()
    # the same clip mixed down and resampled by hand gives the same vector
    mono = torch.from_numpy(stereo.mean(axis=1))
    import torchaudio

    resampled = torchaudio.functional.resample(mono, sr, SR)
    np.testing.assert_allclose(_np(enc.encode([resampled])), _np(out), atol=1e-5)
    np.testing.assert_allclose(_np(enc.encode([(stereo.T.copy(), sr)])), _np(out), atol=1e-5)  # (2, T)
    for ext in ("wav", "flac"):
        path = tmp_path / f"tone.{ext}"
        sf.write(path, stereo, sr, subtype="FLOAT" if ext == "wav" else None)
        np.testing.assert_allclose(_np(enc.encode([str(path)])), _np(out),
                                   atol=1e-4 if ext == "wav" else 1e-2)
        np.testing.assert_allclose(_np(enc.encode([path])), _np(enc.encode([str(path)])), atol=1e-6)


def test_array_tensor_and_tuple_inputs_agree(enc, clips):
    wave = clips[0]
    vectors = enc.encode([wave, torch.from_numpy(wave), (wave, SR), (torch.from_numpy(wave), SR)])
    for row in vectors[1:]:
        np.testing.assert_allclose(_np(row), _np(vectors[0]), atol=1e-6)


def test_crop_and_short_clips(enc):
    long = _tone(440, 3.0) + _tone(97, 3.0, amp=0.1)
    np.testing.assert_allclose(_np(enc.encode([long])), _np(enc.encode([long[: 2 * SR]])), atol=1e-5)
    assert enc.min_samples == 20  # (1 - 1) * 2 + 3 = 3 samples after conv 1 → (3 - 1) * 5 + 10
    tiny = np.array([0.1, -0.2, 0.3], dtype=np.float32)  # shorter than one frame
    out = enc.encode([tiny, _tone(440, 0.5)])
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_waveform_normalisation_follows_checkpoint(tmp_path, clips):
    path = _save_tiny(tmp_path / "model")
    enc_default = get_encoder("audio", model_name_or_path=path, device="cpu")
    assert enc_default.normalize_waveform  # no preprocessor_config.json: HF default
    transformers.Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(path)
    enc_off = get_encoder("audio", model_name_or_path=path, device="cpu")
    assert not enc_off.normalize_waveform
    wave = clips[0] * 3 + 0.1
    on = enc_default.preprocess([wave])["input_values"][0]  # (T,)
    off = enc_off.preprocess([wave])["input_values"][0]
    np.testing.assert_allclose(_np(off), wave, atol=1e-7)
    assert abs(float(on.mean())) < 1e-5 and abs(float(on.std(unbiased=False)) - 1) < 1e-4
    forced = get_encoder("audio", model_name_or_path=path, normalize_waveform=True, device="cpu")
    np.testing.assert_allclose(_np(forced.preprocess([wave])["input_values"][0]), _np(on), atol=1e-7)
    with pytest.raises(EncoderConfigError, match="16000 Hz"):
        get_encoder("audio", model_name_or_path=path, sample_rate=8000)


def test_bad_inputs(enc, tmp_path):
    with pytest.raises(EncoderInputError, match="not found"):
        enc.encode([str(tmp_path / "missing.wav")])
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(EncoderInputError, match="cannot read audio"):
        enc.encode([str(tmp_path / "bad.wav")])
    with pytest.raises(EncoderInputError, match="dict"):
        enc.encode([{"wave": [0.0]}])
    with pytest.raises(EncoderInputError, match="NaN"):
        enc.encode([np.array([0.0, np.nan] * 400, dtype=np.float32)])
    with pytest.raises(EncoderInputError, match="sample rate"):
        enc.encode([(np.zeros(1000, np.float32), -5)])


def test_bad_config(tmp_path):
    with pytest.raises(EncoderConfigError, match="backend"):
        get_encoder("audio", backend="fairseq")
    with pytest.raises(EncoderConfigError, match="max_seconds"):
        get_encoder("audio", max_seconds=0)
    with pytest.raises(EncoderConfigError, match="cannot load audio model"):
        get_encoder("audio", model_name_or_path=str(tmp_path / "no-such-model"))


def test_missing_transformers_names_audio_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingBackendError, match=r"multirec\[audio\]") as info:
        get_encoder("audio", model_name_or_path="unused")
    assert "transformers" in str(info.value)


# ---------------------------------------------------------------- torchaudio backend
class _TinyBundle:
    """Stands in for a torchaudio.pipelines bundle (real ones download weights)."""

    sample_rate = SR

    def __init__(self) -> None:
        from torchaudio.models import wav2vec2_model

        with torch.random.fork_rng():
            torch.manual_seed(0)
            self._model = wav2vec2_model(
                extractor_mode="group_norm", extractor_conv_layer_config=[(32, 10, 5), (32, 3, 2)],
                extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.1,
                encoder_pos_conv_kernel=16, encoder_pos_conv_groups=2, encoder_num_layers=2,
                encoder_num_heads=2, encoder_attention_dropout=0.1, encoder_ff_interm_features=64,
                encoder_ff_interm_dropout=0.0, encoder_dropout=0.1, encoder_layer_norm_first=False,
                encoder_layer_drop=0.05, aux_num_out=None)

    def get_model(self) -> torch.nn.Module:
        return copy.deepcopy(self._model).eval()


@pytest.fixture
def tiny_bundle(monkeypatch) -> str:
    pipelines = pytest.importorskip("torchaudio.pipelines")
    monkeypatch.setattr(pipelines, "TINY_TEST_BUNDLE", _TinyBundle(), raising=False)
    return "TINY_TEST_BUNDLE"


def test_torchaudio_backend_with_local_bundle(tiny_bundle, clips):
    enc = get_encoder("audio", backend="torchaudio", bundle=tiny_bundle, device="cpu")
    assert enc.dim == 32 and enc.per_clip and not enc.normalize_waveform
    out = enc.encode(clips)
    assert out.shape == (3, 32) and out.dtype == torch.float32
    single = torch.cat([enc.encode([c]) for c in clips])
    np.testing.assert_allclose(_np(out), _np(single), atol=1e-5)
    clone = Encoder.from_config(enc.to_config(), device="cpu")
    np.testing.assert_allclose(_np(clone.encode(clips)), _np(out), atol=1e-6)
    frames = enc.frame_lengths(torch.tensor([SR]))
    with torch.no_grad():
        hidden, _ = enc.model(torch.zeros(1, SR))
    assert int(frames[0]) == hidden.shape[1]


def test_torchaudio_unknown_bundle_lists_known():
    pytest.importorskip("torchaudio.pipelines")
    with pytest.raises(EncoderConfigError, match="WAV2VEC2_BASE"):
        get_encoder("audio", backend="torchaudio", bundle="NO_SUCH_BUNDLE")
    with pytest.raises(EncoderConfigError, match="sample_rate"):
        get_encoder("audio", backend="torchaudio", bundle="WAV2VEC2_BASE", sample_rate=8000)


def test_torchaudio_missing_names_audio_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchaudio", None)
    monkeypatch.setitem(sys.modules, "torchaudio.pipelines", None)
    with pytest.raises(MissingBackendError, match=r"multirec\[audio\]"):
        get_encoder("audio", backend="torchaudio")


@pytest.mark.parametrize("rate", [SR, 8000])
def test_long_file_decodes_only_max_seconds(tmp_path, monkeypatch, rate):
    """A 60 s FLAC with max_seconds=2 reads ~2 s of frames, not the whole file (issue #15)."""
    import tracemalloc

    sf = pytest.importorskip("soundfile")
    from encoders.media import load_audio

    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(60 * rate)).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, long, rate)
    requested = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    tracemalloc.start()
    wave = load_audio(path, SR, max_seconds=2.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert wave.shape == (2 * SR,)
    assert requested and all(0 < f <= 2 * rate + rate // 100 + 64 for f in requested), requested
    assert peak < 60 * rate * 4 / 4, peak  # far below the full file's float32 samples
    # the same samples as decoding everything, resampling, then cropping (up to the edge)
    full = torch.from_numpy(long)
    if rate != SR:
        import torchaudio

        full = torchaudio.functional.resample(full, rate, SR)
    np.testing.assert_allclose(wave[: int(1.9 * SR)].numpy(), full[: int(1.9 * SR)].numpy(),
                               atol=1e-4)
    unlimited = load_audio(path, SR, max_seconds=None)
    assert unlimited.shape[0] == full.shape[0]
