"""End-to-end encoder fine-tuning: a text encoder with trainable layers trains with the towers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders import get_encoder
from multirec.data import InteractionData
from multirec.model import MultimodalRecommender

pytest.importorskip("transformers")

GROUPS = ["jazz piano", "metal guitar", "folk violin", "techno synth"]
N_USERS, N_ITEMS = 80, 60


def _planted(seed: int = 0) -> tuple[InteractionData, dict[str, str], np.ndarray]:
    """Each user likes one genre; item text names the genre. Returns data, texts, group of item."""
    rng = np.random.default_rng(seed)
    group = np.arange(N_ITEMS) % len(GROUPS)
    texts = {f"i{i}": f"a {GROUPS[g]} track number {i}" for i, g in enumerate(group)}
    users, items = [], []
    for u in range(N_USERS):
        liked = np.flatnonzero(group == u % len(GROUPS))
        for i in rng.choice(liked, 8, replace=False):
            users.append(f"u{u}")
            items.append(f"i{i}")
    data = InteractionData.from_arrays(users, items, item_ids=list(texts),
                                       item_content={"text": texts})
    return data, texts, group


def _text_encoder(path: str, trainable_layers: int):
    return get_encoder("text", model_name_or_path=path, max_length=16, device="cpu",
                       trainable_layers=trainable_layers)


def _fit(path: str, trainable_layers: int, data: InteractionData) -> MultimodalRecommender:
    return MultimodalRecommender(
        encoders={"text": _text_encoder(path, trainable_layers)}, cf=False, dim=16, epochs=30,
        eval_every=4, lr=3e-3, negatives=24, batch_size=16, show_progress=False, seed=0,
    ).fit(data)


@pytest.fixture(scope="module")
def tuned(tiny_bert_dir):
    data, texts, group = _planted()
    before = _text_encoder(tiny_bert_dir, 1).state_dict()
    model = _fit(tiny_bert_dir, 1, data)
    return model, before, data, texts, group


def test_trainable_layers_change_and_frozen_ones_do_not(tuned):
    model, before, *_ = tuned
    after = model.encoder("text").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "fine-tuning left every encoder weight unchanged"
    assert all(".layer.1." in k for k in changed), sorted(changed)[:5]  # only the last layer
    assert model.network.finetuned == ["text"]


def test_buffers_hold_the_fine_tuned_embeddings(tuned):
    model, _, data, texts, _ = tuned
    enc = model.encoder("text").eval()
    with torch.no_grad():
        fresh = enc.encode([texts[i] for i in data.items.to_list()])  # (n_items, 32)
    torch.testing.assert_close(model.network.content_text, fresh, atol=1e-5, rtol=1e-5)


def test_new_items_are_placed_by_the_fine_tuned_encoder(tuned):
    model, *_ = tuned
    new = {f"new{g}_{j}": f"a {GROUPS[g]} track number {900 + j}"
           for g in range(len(GROUPS)) for j in range(3)}
    model.add_items({"text": new})  # cold: content only, embedded by the fine-tuned encoder
    ids, _ = model.recommend([f"u{u}" for u in range(N_USERS)], n=1, items=list(new))
    hit = [str(ids[u][0]).startswith(f"new{u % len(GROUPS)}_") for u in range(N_USERS)]
    assert np.mean(hit) >= 0.9, np.mean(hit)  # chance: 0.25


def test_save_load_keeps_fine_tuned_weights(tuned, tiny_bert_dir, tmp_path):
    model, *_ = tuned
    model.save_pretrained(tmp_path / "m")
    # the encoder's base model is a local folder outside the save: the loader must be told
    loaded = MultimodalRecommender.from_pretrained(tmp_path / "m",
                                                   encoder_paths={"text": tiny_bert_dir})
    assert loaded.network.finetuned == ["text"]
    users = np.arange(10)
    np.testing.assert_allclose(loaded.score_users(users), model.score_users(users), atol=1e-5)
    a, b = model.encoder("text").state_dict(), loaded.encoder("text").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_encoder_is_not_attached(tiny_bert_dir):
    data, *_ = _planted()
    model = MultimodalRecommender(encoders={"text": _text_encoder(tiny_bert_dir, 0)}, cf=False,
                                  dim=8, epochs=1, show_progress=False).fit(data)
    assert model.network.finetuned == []
    assert not any(k.startswith("encoders.") for k in model.network.state_dict())
