"""The no-pickle check itself catches every pickle protocol and torch.save archives."""

from __future__ import annotations

import pickle

import pytest
import torch
from nopickle import assert_not_pickle  # tests/ is on sys.path


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("suffix", [".safetensors", ".json", ".faiss"])
def test_catches_every_pickle_protocol(tmp_path, protocol, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol))
    with pytest.raises(AssertionError, match="pickle|zip"):
        assert_not_pickle(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin", ".json"])
def test_catches_torch_save(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(AssertionError, match="zip"):
        assert_not_pickle(path)


def test_accepts_safetensors_and_json(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "x.safetensors"))
    (tmp_path / "x.json").write_text('{"a": 1}')
    assert_not_pickle(tmp_path / "x.safetensors")
    assert_not_pickle(tmp_path / "x.json")
