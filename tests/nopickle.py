"""`assert_not_pickle(path)`: a saved file is JSON, safetensors or FAISS — never a pickle
(any protocol, 0 to 5) and never a `torch.save` zip archive."""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path


class _IsPickle(Exception):
    pass


class _Probe(pickle.Unpickler):
    """Unpickles plain data only; any class or function lookup means a pickle with code."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - never returns
        raise _IsPickle(f"{module}.{name}")


def _is_pickle(data: bytes) -> bool:
    if data.startswith(b"\x80"):  # protocol 2+ header
        return True
    try:
        _Probe(io.BytesIO(data)).load()
    except _IsPickle:
        return True
    except Exception:  # noqa: BLE001 - not a pickle stream
        return False
    return True


def assert_not_pickle(path: Path) -> None:
    path = Path(path)
    data = path.read_bytes()
    assert not data.startswith(b"PK\x03\x04"), f"{path.name} is a zip archive (torch.save format)"
    if path.suffix == ".json":  # the whole file parses as JSON: not a pickle
        try:
            json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AssertionError(f"{path.name} is not JSON (a pickle?): {exc}") from exc
    elif path.suffix == ".safetensors":  # 8-byte header size, JSON header, then exactly the tensors
        try:
            (n,) = struct.unpack("<Q", data[:8])
            header = json.loads(data[8:8 + n].decode("utf-8"))
        except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AssertionError(f"{path.name} is not safetensors (a pickle?): {exc}") from exc
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        assert 8 + n + max(ends, default=0) == len(data), f"{path.name}: sizes do not add up"
    else:
        assert not _is_pickle(data), f"{path.name} is a pickle"
