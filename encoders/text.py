"""`text`: BERT-family transformers models (any `AutoModel` checkpoint: hub name or local dir)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._backends import require
from .base import Encoder
from .errors import EncoderConfigError, EncoderInputError
from .registry import register_encoder

__all__ = ["TextEncoder"]


@register_encoder("text")
class TextEncoder(Encoder):
    """Sentence vectors from a transformers encoder with mean or CLS pooling.

        >>> enc = TextEncoder("sentence-transformers/all-MiniLM-L6-v2")   # or a local path
        >>> enc.encode(["a calm piano piece"]).shape                          # (1, 384)

    `trainable_layers` > 0 unfreezes the last N transformer layers for fine-tuning.
    """

    modality = "text"

    def __init__(self, model_name_or_path: str = "sentence-transformers/all-MiniLM-L6-v2",
                 pooling: str = "mean", max_length: int = 128, normalize: bool = True,
                 trainable_layers: int = 0) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise EncoderConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if max_length < 1:
            raise EncoderConfigError(f"max_length must be >= 1, got {max_length}")
        tf = require("transformers", "the text encoder")
        try:
            self.tokenizer = tf.AutoTokenizer.from_pretrained(model_name_or_path)
            self.model = tf.AutoModel.from_pretrained(model_name_or_path)
        except OSError as exc:
            raise EncoderConfigError(
                f"cannot load text model {model_name_or_path!r} ({exc}). Pass a local directory "
                "or a hub name you can download (set HF_HUB_OFFLINE=0 when online)"
            ) from exc
        self.pooling, self.max_length, self.normalize = pooling, max_length, normalize
        self.dim = int(self.model.config.hidden_size)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if trainable_layers:
            layers = _layers(self.model)
            for layer in layers[-trainable_layers:]:
                for p in layer.parameters():
                    p.requires_grad_(True)

    def preprocess(self, raw_batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        for pos, text in enumerate(raw_batch):
            if not isinstance(text, str):
                raise EncoderInputError(f"text item {pos} is a {type(text).__name__}, expected str")
        return dict(self.tokenizer(list(raw_batch), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt"))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, dim)
        hidden = self.model(**inputs).last_hidden_state  # (B, T, dim)
        if self.pooling == "cls":
            out = hidden[:, 0]
        else:
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(out, dim=-1) if self.normalize else out


def _layers(model: Any) -> list[Any]:
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return list(obj)
        except AttributeError:
            continue
    raise EncoderConfigError(f"cannot find transformer layers in {type(model).__name__} to unfreeze")
