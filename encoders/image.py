"""`image`: open_clip image tower (and its text tower for text → image queries).

open_clip is imported when an `ImageEncoder` is built, never at module import.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._backends import require
from .base import Encoder
from .errors import EncoderConfigError, EncoderInputError
from .media import load_image
from .registry import register_encoder
from .text import resolve_device

__all__ = ["ImageEncoder"]


@register_encoder("image")
class ImageEncoder(Encoder):
    """CLIP image vectors from open_clip; items are PIL images, file paths or uint8 arrays.

    The model is built with `open_clip.create_model_and_transforms(model_name, pretrained)`;
    see `open_clip.list_pretrained()` for the (name, tag) pairs, or pass a local weights file
    as `checkpoint_path` (it takes precedence over `pretrained`). `pretrained=None` gives
    random weights (tests). `encode_text` embeds text queries into the same space.
    `pretrained` is a published tag or a file path, nothing else (no URLs); weights are read
    with `weights_only=True`, so a checkpoint cannot run code. Remote-code surface left:
    an `hf-hub:` model name whose config names a Hugging Face text tower is built by
    open_clip's own `AutoModel` call (weights and configs only for the standard model types).

        >>> enc = ImageEncoder("ViT-B-32", pretrained="openai")    # or checkpoint_path="w.pt"
        >>> enc.encode(["cover.jpg", pil_image]).shape                # (2, 512)
        >>> enc.encode_text(["a calm sea at dawn"]).shape             # (1, 512)

    Args:
        normalize: L2-normalise image and text vectors (cosine similarity = dot product).
        device: "cpu", "cuda", ...; None picks CUDA when available.
    """

    modality = "image"
    str_is_path = True

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = "openai",
        checkpoint_path: str | None = None,
        normalize: bool = True,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if checkpoint_path is not None and not Path(checkpoint_path).is_file():
            raise EncoderConfigError(
                f"checkpoint_path {str(checkpoint_path)!r} is not a file; pass the path of an "
                "open_clip weights file (.pt, .bin or .safetensors)"
            )
        oc = require("open_clip", "the image encoder")
        weights = str(checkpoint_path) if checkpoint_path is not None else pretrained
        _check_pretrained(oc, model_name, weights)
        try:
            # weights_only: checkpoints are read as tensors, never unpickled as code.
            model, _, transform = oc.create_model_and_transforms(model_name, pretrained=weights,
                                                                 weights_only=True)
            self.tokenizer = oc.get_tokenizer(model_name)
        except (RuntimeError, ValueError, OSError, KeyError) as exc:
            raise EncoderConfigError(
                f"cannot build open_clip model {model_name!r} with weights {weights!r} ({exc}). "
                "See open_clip.list_models() / open_clip.list_pretrained(), or pass "
                "checkpoint_path= a local weights file (downloads need network once)"
            ) from exc
        self.model, self.transform = model.eval(), transform  # transform: PIL → (3, H, W)
        self.normalize = normalize
        self.model.requires_grad_(False)
        self.dim = _embed_dim(oc, model_name, self.model, transform)
        self.to(resolve_device(device))
        self.eval()  # built for inference (no dropout); fine-tuning calls .train()

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, 3, H, W)
        """Decode each item to RGB and apply the model's resize / crop / normalise transform."""
        return torch.stack([self.transform(load_image(item)) for item in raw_batch])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        dtype = next(self.model.parameters()).dtype
        out = self.model.encode_image(inputs.to(dtype)).float()  # (B, dim)
        return nn.functional.normalize(out, dim=-1) if self.normalize else out

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:  # (B, dim)
        """CLIP text-tower vectors in the same space as the images (text → image search)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise EncoderInputError("ImageEncoder.encode_text() got an empty list of texts")
        for pos, text in enumerate(texts):
            if not isinstance(text, str):
                raise EncoderInputError(
                    f"text query {pos} is a {type(text).__name__} ({text!r:.60}), expected str"
                )
        tokens = self.tokenizer(texts).to(self.device)  # (B, context_length)
        out = self.model.encode_text(tokens).float()  # (B, dim)
        return nn.functional.normalize(out, dim=-1) if self.normalize else out


def _check_pretrained(oc: Any, model_name: str, weights: str | None) -> None:
    """`pretrained` must be None, a local weights file, or a published tag of `model_name`."""
    if weights is None or Path(weights).is_file() or str(model_name).startswith("hf-hub:"):
        return
    tags = oc.list_pretrained_tags_by_model(model_name)
    if not oc.is_pretrained_cfg(model_name, weights):
        raise EncoderConfigError(
            f"pretrained={weights!r} is neither a local weights file nor a published tag of "
            f"open_clip model {model_name!r} (tags: {', '.join(tags) or 'none'}); pass one of "
            "those tags, checkpoint_path= a local file, or pretrained=None for random weights"
        )


def _embed_dim(oc: Any, model_name: str, model: nn.Module, transform: Any) -> int:
    """Output size of the image tower: from the model, its config, or one dummy forward."""
    dim = getattr(getattr(model, "visual", None), "output_dim", None)
    if isinstance(dim, int):
        return dim
    config = oc.get_model_config(model_name) or {}
    if isinstance(config.get("embed_dim"), int):
        return int(config["embed_dim"])
    from PIL import Image

    with torch.no_grad():
        dummy = transform(Image.new("RGB", (64, 64))).unsqueeze(0)  # (1, 3, H, W)
        return int(model.encode_image(dummy).shape[-1])
