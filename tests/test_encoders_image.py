"""ImageEncoder on a tiny random open_clip config (weights saved to a file and loaded by path)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from encoders import Encoder, EncoderConfigError, EncoderInputError, MissingBackendError, get_encoder

open_clip = pytest.importorskip("open_clip")
Image = pytest.importorskip("PIL.Image")

MODEL = "multirec-tiny-clip-test"
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-clip")
    (folder / f"{MODEL}.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder / f"{MODEL}.json")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model(MODEL, pretrained=None)
    path = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def enc(checkpoint):
    return get_encoder("image", model_name=MODEL, pretrained=None, checkpoint_path=checkpoint,
                       device="cpu")


@pytest.fixture(scope="module")
def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8),
            rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
            rng.integers(0, 256, (64, 50), dtype=np.uint8)]  # grayscale


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def test_shape_dtype_norm(enc, arrays):
    out = enc.encode(arrays)
    assert enc.modality == "image" and enc.dim == 32
    assert out.shape == (3, 32) and out.dtype == torch.float32
    np.testing.assert_allclose(_np(out.norm(dim=1)), 1.0, atol=1e-5)


def test_deterministic_in_eval(enc, arrays):
    with torch.no_grad():
        np.testing.assert_array_equal(_np(enc.encode(arrays)), _np(enc.encode(arrays)))


def test_batch_equals_one_by_one(enc, arrays):
    with torch.no_grad():
        batch = enc.encode(arrays)
        single = torch.cat([enc.encode([a]) for a in arrays])
    np.testing.assert_allclose(_np(batch), _np(single), atol=1e-5)


def test_pil_path_and_array_agree(enc, arrays, tmp_path):
    arr = arrays[0]
    Image.fromarray(arr).save(tmp_path / "x.png")
    vectors = enc.encode([arr, Image.fromarray(arr), str(tmp_path / "x.png"), tmp_path / "x.png",
                          torch.from_numpy(arr)])
    for row in vectors[1:]:
        np.testing.assert_allclose(_np(row), _np(vectors[0]), atol=1e-5)
    rgba = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(_np(enc.encode([rgba])[0]), _np(vectors[0]), atol=1e-5)


def test_config_roundtrip_same_outputs(enc, arrays, checkpoint):
    config = json.loads(json.dumps(enc.to_config()))
    assert config == {"name": "image", "model_name": MODEL, "pretrained": None,
                      "checkpoint_path": checkpoint, "normalize": True}
    clone = Encoder.from_config(config, device="cpu")
    assert clone.weights_digest() == enc.weights_digest()
    np.testing.assert_allclose(_np(clone.encode(arrays)), _np(enc.encode(arrays)), atol=1e-6)
    np.testing.assert_allclose(_np(clone.encode_text(["a dog"])), _np(enc.encode_text(["a dog"])),
                               atol=1e-6)


def test_encode_text(enc, checkpoint):
    t = enc.encode_text(["a calm sea", "a city at night", "a dog"])
    assert t.shape == (3, 32) and t.dtype == torch.float32
    np.testing.assert_allclose(_np(t.norm(dim=1)), 1.0, atol=1e-5)
    assert not np.allclose(_np(t[0]), _np(t[1]))
    single = torch.cat([enc.encode_text([s]) for s in ["a calm sea", "a city at night", "a dog"]])
    np.testing.assert_allclose(_np(single), _np(t), atol=1e-5)
    raw = get_encoder("image", model_name=MODEL, pretrained=None, checkpoint_path=checkpoint,
                      normalize=False, device="cpu")
    np.testing.assert_allclose(_np(torch.nn.functional.normalize(raw.encode_text(["a dog"]), dim=1)),
                               _np(enc.encode_text(["a dog"])), atol=1e-6)
    with pytest.raises(EncoderInputError, match="int"):
        enc.encode_text(["ok", 5])
    with pytest.raises(EncoderInputError, match="empty"):
        enc.encode_text([])


def test_bad_inputs(enc, tmp_path):
    with pytest.raises(EncoderInputError, match="not found"):
        enc.encode([str(tmp_path / "missing.png")])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(EncoderInputError, match="cannot read image"):
        enc.encode([str(tmp_path / "bad.png")])
    with pytest.raises(EncoderInputError, match="uint8"):
        enc.encode([np.zeros((8, 8, 3), dtype=np.float32)])
    with pytest.raises(EncoderInputError, match="dict"):
        enc.encode([{"not": "an image"}])


def test_bad_config(tmp_path, checkpoint):
    with pytest.raises(EncoderConfigError, match="checkpoint_path"):
        get_encoder("image", model_name=MODEL, checkpoint_path=str(tmp_path / "nope.pt"))
    with pytest.raises(EncoderConfigError, match="no-such-clip"):
        get_encoder("image", model_name="no-such-clip", pretrained=None)
    with pytest.raises(EncoderConfigError, match="not-a-tag"):
        get_encoder("image", model_name=MODEL, pretrained="not-a-tag")


def test_missing_backend_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(MissingBackendError, match=r"multirec\[image\]"):
        get_encoder("image", pretrained=None)
