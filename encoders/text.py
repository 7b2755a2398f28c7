"""`text`: BERT-family transformers models (any `AutoModel` checkpoint: hub name or local dir).

transformers is imported when a `TextEncoder` is built, never at module import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._backends import require
from .base import Encoder
from .errors import EncoderConfigError, EncoderInputError
from .packaged import resolve_packaged
from .registry import register_encoder

__all__ = ["TextEncoder"]

_POOLINGS = ("mean", "cls")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` → CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise EncoderConfigError(f"invalid device {device!r} ({exc}); use 'cpu', 'cuda' or 'cuda:0'") from exc


@register_encoder("text")
class TextEncoder(Encoder):
    """Sentence vectors from a transformers encoder (BERT family) with mean or CLS pooling.

    `model_name_or_path` is anything `transformers.AutoModel.from_pretrained` accepts: a hub
    name (downloaded once into the Hugging Face cache) or a local directory holding
    `config.json`, the weights and the tokenizer files; or `"package:NAME/sub/dir"`, such a
    folder inside an installed package (`encoders.packaged`: a saved model that names it
    loads on any machine with the package).

        >>> enc = TextEncoder("sentence-transformers/all-MiniLM-L6-v2")   # or a local path
        >>> enc.encode(["a calm piano piece", "loud guitars"]).shape       # (2, 384)
        torch.Size([2, 384])

    Args:
        pooling: "mean" (average of the token vectors, padding excluded; what
            sentence-transformers models expect) or "cls" (the first token's vector).
        max_length: longer texts are truncated to this many tokens.
        normalize: L2-normalise the output vectors (cosine similarity = dot product).
        device: "cpu", "cuda", ...; None picks CUDA when available.
        trainable_layers: all weights are frozen except the last `trainable_layers`
            transformer layers, for fine-tuning end to end (0 = fully frozen).
    """

    modality = "text"

    def __init__(
        self,
        model_name_or_path: str = "sentence-transformers/all-MiniLM-L6-v2",
        pooling: str = "mean",
        max_length: int = 128,
        normalize: bool = True,
        device: str | None = None,
        trainable_layers: int = 0,
    ) -> None:
        super().__init__()
        if pooling not in _POOLINGS:
            raise EncoderConfigError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise EncoderConfigError(f"max_length must be an int >= 1, got {max_length!r}")
        if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int) \
                or trainable_layers < 0:
            raise EncoderConfigError(f"trainable_layers must be an int >= 0, got {trainable_layers!r}")
        tf = require("transformers", "the text encoder")
        source = resolve_packaged(model_name_or_path)
        try:
            # Never run code shipped with a checkpoint (auto_map) and never prompt for it.
            self.tokenizer = tf.AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            self.model = tf.AutoModel.from_pretrained(source, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise EncoderConfigError(
                f"cannot load text model {model_name_or_path!r} ({exc}). Pass a local directory "
                "with config.json, weights and tokenizer files, or a hub name (needs network "
                "once; unset HF_HUB_OFFLINE)"
            ) from exc
        self.pooling, self.max_length, self.normalize = pooling, max_length, normalize
        self.dim = int(self.model.config.hidden_size)
        self.model.eval()
        self.model.requires_grad_(False)
        if trainable_layers:
            layers = _transformer_layers(self.model)
            if trainable_layers > len(layers):
                raise EncoderConfigError(
                    f"trainable_layers={trainable_layers} but {model_name_or_path!r} has only "
                    f"{len(layers)} transformer layers"
                )
            for layer in layers[-trainable_layers:]:
                layer.requires_grad_(True)
        self.to(resolve_device(device))
        self.eval()  # built for inference (no dropout); fine-tuning calls .train()

    def preprocess(self, raw_batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Tokenise (pad to the longest, truncate to `max_length`)."""
        for pos, text in enumerate(raw_batch):
            if not isinstance(text, str):
                raise EncoderInputError(
                    f"text item {pos} is a {type(text).__name__} ({text!r:.60}), expected str"
                )
        tokens = self.tokenizer(list(raw_batch), padding="longest", truncation=True,
                                max_length=self.max_length, return_tensors="pt")
        return dict(tokens)  # input_ids, attention_mask[, token_type_ids]: (B, T)

    def sort_key(self, item: Any) -> int:
        """Length in characters: `encode_all` batches similar lengths together."""
        return len(item) if isinstance(item, str) else 0

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, dim)
        hidden = self.model(**inputs).last_hidden_state  # (B, T, dim)
        if self.pooling == "cls":
            out = hidden[:, 0]  # (B, dim)
        else:
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, dim)
        out = out.float()
        return nn.functional.normalize(out, dim=-1) if self.normalize else out


def _transformer_layers(model: nn.Module) -> list[nn.Module]:
    """The stack of transformer blocks (BERT/RoBERTa `encoder.layer`, DistilBERT, ...)."""
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer", "layer"):
        obj: Any = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, nn.ModuleList):
            return list(obj)
    raise EncoderConfigError(
        f"cannot find the transformer layers of {type(model).__name__} to unfreeze; "
        "use trainable_layers=0 and unfreeze parameters yourself"
    )
