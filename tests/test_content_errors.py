"""Bad media do not stop a fit: on_error="skip" treats unreadable files as missing content."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from encoders.errors import EncoderInputError
from multirec import InteractionData, MultimodalRecommender


def _data(tmp_path, broken: bool = True) -> InteractionData:
    rng = np.random.default_rng(0)
    images = {}
    for i in range(12):
        path = tmp_path / f"i{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
        images[f"i{i}"] = str(path)
    if broken:
        (tmp_path / "i3.png").write_bytes(b"not a png")
        images["i7"] = str(tmp_path / "missing.png")
    users = [f"u{u}" for u in range(20) for _ in range(4)]
    items = [f"i{(u * 3 + j) % 12}" for u in range(20) for j in range(4)]
    return InteractionData.from_arrays(users, items, item_content={"image": images})


FAST = dict(encoders={"image": "image-stats"}, epochs=2, cf=False, show_progress=False)


def test_skip_keeps_fitting_and_reports_the_broken_items(tmp_path):
    data = _data(tmp_path)
    with pytest.warns(UserWarning, match="2 item"):
        model = MultimodalRecommender(**FAST, on_error="skip").fit(data)
    assert sorted(model.content_report_["image"]) == ["i3", "i7"]
    ids, _ = model.recommend("u0", n=3)
    assert len(ids) == 3
    assert "image" not in model.explain("u0", "i3")["sources_present"]
    assert "image" in model.explain("u0", "i4")["sources_present"]


def test_raise_names_the_item_and_the_path(tmp_path):
    data = _data(tmp_path)
    with pytest.raises(EncoderInputError, match=r"item '(i3|i7)' .*(i3\.png|missing\.png)"):
        MultimodalRecommender(**FAST).fit(data)


def test_clean_data_has_an_empty_report(tmp_path):
    model = MultimodalRecommender(**FAST, on_error="skip").fit(_data(tmp_path, broken=False))
    assert model.content_report_ == {}
