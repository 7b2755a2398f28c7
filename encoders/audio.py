"""`audio`: wav2vec2 (transformers `Wav2Vec2Model` or a torchaudio pipeline), mean-pooled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._backends import require
from .base import Encoder
from .errors import EncoderConfigError
from .media import load_audio
from .registry import register_encoder

__all__ = ["AudioEncoder"]


@register_encoder("audio")
class AudioEncoder(Encoder):
    """Audio vectors from wav2vec2. Inputs: file paths (wav/flac/ogg), `(waveform, sr)` tuples
    or arrays at `sample_rate`; stereo is mixed down, other rates resampled, long clips cropped.

        >>> enc = AudioEncoder("facebook/wav2vec2-base")                  # or a local path
        >>> enc = AudioEncoder(backend="torchaudio", bundle="WAV2VEC2_BASE")
    """

    modality = "audio"
    str_is_path = True

    def __init__(self, model_name_or_path: str = "facebook/wav2vec2-base", backend: str = "transformers",
                 bundle: str = "WAV2VEC2_BASE", sample_rate: int = 16000, max_seconds: float = 10.0,
                 normalize: bool = True) -> None:
        super().__init__()
        if backend not in ("transformers", "torchaudio"):
            raise EncoderConfigError(f"backend must be 'transformers' or 'torchaudio', got {backend!r}")
        self.backend, self.max_seconds, self.normalize = backend, max_seconds, normalize
        if backend == "transformers":
            tf = require("transformers", "the audio encoder")
            try:
                self.model = tf.Wav2Vec2Model.from_pretrained(model_name_or_path)
            except OSError as exc:
                raise EncoderConfigError(
                    f"cannot load wav2vec2 model {model_name_or_path!r} ({exc}); pass a local path"
                ) from exc
            self.sample_rate = sample_rate
            self.dim = int(self.model.config.hidden_size)
        else:
            ta = require("torchaudio", "the audio encoder")
            pipeline = getattr(ta.pipelines, bundle, None)
            if pipeline is None:
                raise EncoderConfigError(f"torchaudio has no pipeline {bundle!r}; e.g. WAV2VEC2_BASE")
            self.model = pipeline.get_model()
            self.sample_rate = int(pipeline.sample_rate)
            self.dim = int(pipeline._params["encoder_embed_dim"])
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def preprocess(self, raw_batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        waves = [load_audio(x, self.sample_rate, self.max_seconds) for x in raw_batch]
        waves = [(w - w.mean()) / (w.std() + 1e-7) for w in waves]  # wav2vec2 input normalisation
        lengths = torch.tensor([w.numel() for w in waves])
        batch = torch.zeros(len(waves), int(lengths.max()))
        for r, w in enumerate(waves):
            batch[r, : w.numel()] = w
        return {"input_values": batch, "lengths": lengths}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, dim)
        x, lengths = inputs["input_values"], inputs["lengths"]
        mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]).long()
        if self.backend == "transformers":
            hidden = self.model(x, attention_mask=mask).last_hidden_state  # (B, F, dim)
            frames = self.model._get_feat_extract_output_lengths(lengths)
        else:
            hidden, frames = self.model(x, lengths)
        fmask = (torch.arange(hidden.shape[1], device=x.device)[None] < frames[:, None])
        fmask = fmask.unsqueeze(-1).to(hidden.dtype)
        out = (hidden * fmask).sum(1) / fmask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(out, dim=-1) if self.normalize else out
