"""`image`: open_clip image tower (and its text tower for text → image queries)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._backends import require
from .base import Encoder
from .errors import EncoderConfigError
from .media import load_image
from .registry import register_encoder

__all__ = ["ImageEncoder"]


@register_encoder("image")
class ImageEncoder(Encoder):
    """CLIP image vectors from open_clip; accepts PIL images, file paths or uint8 arrays.

        >>> enc = ImageEncoder("ViT-B-32", pretrained="openai")     # or checkpoint_path=...
        >>> enc.encode(["cover.jpg"]).shape, enc.encode_text(["a calm sea"]).shape
    """

    modality = "image"
    str_is_path = True

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str | None = "openai",
                 checkpoint_path: str | None = None, normalize: bool = True) -> None:
        super().__init__()
        oc = require("open_clip", "the image encoder")
        try:
            model, _, preprocess = oc.create_model_and_transforms(
                model_name, pretrained=checkpoint_path or pretrained)
        except (RuntimeError, ValueError, OSError) as exc:
            raise EncoderConfigError(
                f"cannot build open_clip model {model_name!r} with pretrained="
                f"{checkpoint_path or pretrained!r} ({exc}); see open_clip.list_pretrained()"
            ) from exc
        self.model, self.transform = model.eval(), preprocess
        self.tokenizer = oc.get_tokenizer(model_name)
        self.normalize = normalize
        for p in self.model.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            size = getattr(self.model.visual, "image_size", 224)
            size = size if isinstance(size, int) else size[0]
            self.dim = int(self.model.encode_image(torch.zeros(1, 3, size, size)).shape[-1])

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, 3, H, W)
        return torch.stack([self.transform(load_image(x)) for x in raw_batch])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        out = self.model.encode_image(inputs)
        return torch.nn.functional.normalize(out, dim=-1) if self.normalize else out

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:  # (B, dim)
        """CLIP text-tower vectors in the same space as the images (cross-modal search)."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        out = self.model.encode_text(tokens).float()
        return torch.nn.functional.normalize(out, dim=-1) if self.normalize else out
