"""Encoder base class, registry, projection and the lazy-import promise."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import encoders
from encoders import (
    Encoder,
    EncoderConfigError,
    EncoderInputError,
    Projection,
    UnknownEncoderError,
    get_encoder,
    list_encoders,
    register_encoder,
)
from encoders.registry import _REGISTRY


class BagOfCharsEncoder(Encoder):
    """Tiny deterministic encoder used across tests: char histogram → linear."""

    modality = "text"

    def __init__(self, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        gen = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(128, dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(dim, 128, generator=gen))
            self.linear.bias.zero_()
        self.calls = 0

    def preprocess(self, raw_batch):
        x = torch.zeros(len(raw_batch), 128)
        for row, text in enumerate(raw_batch):
            for ch in text:
                x[row, ord(ch) % 128] += 1
        return x

    def forward(self, inputs):
        self.calls += 1
        return self.linear(inputs)


@pytest.fixture
def registered():
    register_encoder("test-bag-of-chars", exist_ok=True)(BagOfCharsEncoder)
    yield "test-bag-of-chars"
    _REGISTRY.pop("test-bag-of-chars", None)


def test_custom_encoder_through_registry(registered):
    enc = get_encoder(registered, dim=4)
    assert isinstance(enc, BagOfCharsEncoder) and registered in list_encoders()
    out = enc.encode(["abc", "hello"])
    assert out.shape == (2, 4) and out.dtype == torch.float32


def test_unknown_name_lists_registered(registered):
    with pytest.raises(UnknownEncoderError) as info:
        get_encoder("no-such-encoder")
    message = str(info.value)
    assert "no-such-encoder" in message and registered in message
    assert isinstance(info.value, KeyError)


def test_taken_name_raises_unless_exist_ok(registered):
    class Other(BagOfCharsEncoder):
        pass

    with pytest.raises(EncoderConfigError, match="already registered"):
        register_encoder(registered)(Other)
    register_encoder(registered, exist_ok=True)(Other)
    assert type(get_encoder(registered)) is Other


def test_register_rejects_non_encoder():
    with pytest.raises(EncoderConfigError, match="Encoder subclass"):
        register_encoder("not-an-encoder")(dict)


def test_config_round_trip_rebuilds_same_outputs(registered):
    enc = get_encoder(registered, dim=6, seed=3)
    config = enc.to_config()
    assert config == {"name": registered, "dim": 6, "seed": 3}
    rebuilt = Encoder.from_config(config)
    texts = ["a song about rain", "loud guitars"]
    torch.testing.assert_close(rebuilt.encode(texts), enc.encode(texts))


def test_config_is_what_a_json_round_trip_gives(registered):
    import json

    enc = get_encoder(registered, dim=6, seed=3)
    enc._init_kwargs = {**enc._init_kwargs, "extra": (1, 2)}  # a tuple argument
    config = enc.to_config()
    assert config["extra"] == [1, 2]
    assert json.loads(json.dumps(config)) == config


def test_encode_all_batches_equal_one_by_one(registered):
    enc = get_encoder(registered, dim=5)
    texts = [f"item {k} " * (k + 1) for k in range(11)]
    together = enc.encode_all(texts, batch_size=4, show_progress=False)
    single = torch.cat([enc.encode([t]) for t in texts]).detach()
    assert together.shape == (11, 5)
    torch.testing.assert_close(together, single)


def test_encode_all_accepts_generators_and_empty(registered):
    enc = get_encoder(registered, dim=3)
    out = enc.encode_all((f"x{k}" for k in range(7)), batch_size=3, show_progress=False)
    assert out.shape == (7, 3)
    assert enc.encode_all([], show_progress=False).shape == (0, 3)
    with pytest.raises(EncoderInputError, match="empty batch"):
        enc.encode([])
    with pytest.raises(EncoderInputError, match="batch_size"):
        enc.encode_all(["a"], batch_size=0, show_progress=False)


def test_forward_with_wrong_dim_is_reported(registered):
    enc = get_encoder(registered, dim=5)
    enc.dim = 7  # lie about the output size
    with pytest.raises(EncoderConfigError, match=r"expected \(1, 7\)"):
        enc.encode(["abc"])


def test_fingerprint_tracks_weights_and_config(registered):
    a, b = get_encoder(registered, dim=4, seed=0), get_encoder(registered, dim=4, seed=0)
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():
        b.linear.weight[0, 0] += 1.0
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() != get_encoder(registered, dim=5, seed=0).fingerprint()


def test_content_hash_is_type_aware_and_stable(tmp_path):
    assert encoders.content_hash("1") != encoders.content_hash(1)
    assert encoders.content_hash("abc") == encoders.content_hash("abc")
    arr = np.arange(6, dtype=np.float32)
    assert encoders.content_hash(arr) != encoders.content_hash(arr.reshape(2, 3))
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello")
    q = tmp_path / "g.bin"
    q.write_bytes(b"hello")
    assert encoders.content_hash(str(p), str_is_path=True) == encoders.content_hash(q, str_is_path=True)
    with pytest.raises(EncoderInputError, match="cannot read file"):
        encoders.content_hash(str(tmp_path / "missing.wav"), str_is_path=True)


def test_projection_shapes_and_errors():
    x = torch.randn(3, 10)
    assert Projection(10, 4)(x).shape == (3, 4)
    mlp = Projection(10, 4, hidden=16, dropout=0.1)
    assert mlp(x).shape == (3, 4)
    with pytest.raises(EncoderConfigError, match="last dimension 10"):
        Projection(10, 4)(torch.randn(3, 9))
    with pytest.raises(EncoderConfigError, match="out_dim"):
        Projection(10, 0)


def test_import_encoders_is_light():
    code = (
        "import sys, encoders; heavy = [m for m in ('transformers', 'open_clip', 'torchaudio')"
        " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
