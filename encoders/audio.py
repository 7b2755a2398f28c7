"""`audio`: wav2vec2 (transformers `Wav2Vec2Model` or a torchaudio pipeline), mean-pooled.

transformers / torchaudio are imported when an `AudioEncoder` is built, never at module import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._backends import require
from .base import Encoder
from .errors import EncoderConfigError, MissingBackendError
from .media import load_audio
from .packaged import resolve_packaged
from .registry import register_encoder
from .text import resolve_device

__all__ = ["AudioEncoder"]

_BACKENDS = ("transformers", "torchaudio")


@register_encoder("audio")
class AudioEncoder(Encoder):
    """Clip vectors from wav2vec2: the last hidden layer averaged over the clip's frames.

    Items are file paths (wav/flac/ogg), `(waveform, sample_rate)` tuples, or 1-D arrays
    already at `sample_rate`. Stereo is mixed down, other rates are resampled, clips are
    cropped to `max_seconds`.

        >>> enc = AudioEncoder("facebook/wav2vec2-base")          # transformers, hub or local dir
        >>> enc = AudioEncoder(backend="torchaudio", bundle="WAV2VEC2_BASE")
        >>> enc.encode(["song.wav", (waveform, 44100)]).shape     # (2, 768)

    Args:
        model_name_or_path: for backend="transformers": anything
            `transformers.AutoModel.from_pretrained` accepts that gives a wav2vec2-style model
            (wav2vec2, HuBERT, WavLM, ...).
        bundle: for backend="torchaudio": the name of a `torchaudio.pipelines` bundle.
        sample_rate: the rate the model expects (16 kHz for every published wav2vec2).
        max_seconds: longer clips are cropped to their first `max_seconds` (None: no limit).
        normalize: L2-normalise the output vectors.
        normalize_waveform: zero-mean unit-variance scaling of each clip before the model, as
            the Hugging Face feature extractor does. None follows the checkpoint
            (`preprocessor_config.json`, True when absent); torchaudio bundles apply their own.
        device: "cpu", "cuda", ...; None picks CUDA when available.

    Models whose feature encoder uses group norm (wav2vec2-base) see the whole padded
    waveform, so they run clip by clip; layer-norm models (wav2vec2-large-lv60, ...) run on
    padded batches with an attention mask. Either way a clip's vector does not depend on the
    other clips in its batch.
    """

    modality = "audio"
    str_is_path = True

    def __init__(
        self,
        model_name_or_path: str = "facebook/wav2vec2-base",
        backend: str = "transformers",
        bundle: str = "WAV2VEC2_BASE",
        sample_rate: int = 16000,
        max_seconds: float | None = 10.0,
        normalize: bool = True,
        normalize_waveform: bool | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if backend not in _BACKENDS:
            raise EncoderConfigError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise EncoderConfigError(f"sample_rate must be a positive int, got {sample_rate!r}")
        if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
            raise EncoderConfigError(f"max_seconds must be a positive number or None, got {max_seconds!r}")
        self.backend, self.max_seconds, self.normalize = backend, max_seconds, normalize
        self.sample_rate = sample_rate
        if backend == "transformers":
            self.model, default_norm = self._load_transformers(model_name_or_path, sample_rate)
        else:
            self.model = self._load_torchaudio(bundle, sample_rate)
            default_norm = False  # the bundles that need it normalise inside the model
        self.normalize_waveform = default_norm if normalize_waveform is None else normalize_waveform
        self.model.eval()
        self.model.requires_grad_(False)
        convs = [m for name, m in self.model.named_modules()
                 if "feature_extractor" in name and isinstance(m, nn.Conv1d)]
        if not convs:
            raise EncoderConfigError(
                f"{type(self.model).__name__} has no wav2vec2 convolutional feature extractor; "
                "use a wav2vec2 / HuBERT / WavLM checkpoint"
            )
        self._convs = [(int(c.kernel_size[0]), int(c.stride[0])) for c in convs]
        self.min_samples = 1  # shortest input that yields one frame (the receptive field)
        for kernel, stride in reversed(self._convs):
            self.min_samples = (self.min_samples - 1) * stride + kernel
        # Group norm in the feature encoder normalises over time, padding included.
        self.per_clip = any(isinstance(m, nn.GroupNorm) for m in self.model.modules())
        if backend == "transformers":
            self.dim = int(self.model.config.hidden_size)
        else:
            with torch.no_grad():
                hidden, _ = self.model(torch.zeros(1, self.min_samples))  # (1, F, dim)
            self.dim = int(hidden.shape[-1])
        self.to(resolve_device(device))
        self.eval()  # built for inference (no dropout); fine-tuning calls .train()

    @staticmethod
    def _load_transformers(name: str, sample_rate: int) -> tuple[nn.Module, bool]:
        try:
            tf = require("transformers", "the audio encoder (backend='transformers')")
        except MissingBackendError as exc:
            raise MissingBackendError("transformers", "audio",
                                      "the audio encoder (backend='transformers')") from exc
        try:
            # Never run code shipped with a checkpoint (auto_map) and never prompt for it.
            model = tf.AutoModel.from_pretrained(resolve_packaged(name), trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise EncoderConfigError(
                f"cannot load audio model {name!r} ({exc}). Pass a local directory with "
                "config.json and weights, or a hub name (needs network once; unset HF_HUB_OFFLINE)"
            ) from exc
        try:
            extractor = tf.AutoFeatureExtractor.from_pretrained(name, trust_remote_code=False)
        except (OSError, ValueError):
            extractor = None  # no preprocessor_config.json: Wav2Vec2FeatureExtractor defaults
        rate = getattr(extractor, "sampling_rate", None)
        if rate is not None and int(rate) != sample_rate:
            raise EncoderConfigError(
                f"{name!r} expects audio at {rate} Hz but sample_rate={sample_rate}; pass "
                f"sample_rate={rate} (inputs at other rates are resampled automatically)"
            )
        return model, bool(getattr(extractor, "do_normalize", True))

    @staticmethod
    def _load_torchaudio(bundle: str, sample_rate: int) -> nn.Module:
        pipelines = require("torchaudio.pipelines", "the audio encoder (backend='torchaudio')")
        pipeline = getattr(pipelines, bundle, None)
        if pipeline is None or not hasattr(pipeline, "get_model"):
            known = sorted(n for n in dir(pipelines) if n.isupper() and
                           n.startswith(("WAV2VEC2", "HUBERT", "WAVLM")))
            raise EncoderConfigError(
                f"torchaudio.pipelines has no wav2vec2 bundle {bundle!r}; known: {', '.join(known)}"
            )
        rate = int(getattr(pipeline, "sample_rate", sample_rate))
        if rate != sample_rate:
            raise EncoderConfigError(
                f"bundle {bundle!r} expects audio at {rate} Hz but sample_rate={sample_rate}; pass "
                f"sample_rate={rate} (inputs at other rates are resampled automatically)"
            )
        try:
            return pipeline.get_model()
        except (OSError, RuntimeError) as exc:  # download failures (URLError is an OSError)
            raise EncoderConfigError(
                f"cannot load torchaudio bundle {bundle!r} ({exc}); the weights are downloaded "
                "once into the torch hub cache, which needs network access"
            ) from exc

    def preprocess(self, raw_batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Load, mix down, resample, crop, normalise and zero-pad clips to the longest."""
        waves = []
        for item in raw_batch:
            wave = load_audio(item, self.sample_rate, self.max_seconds)  # (T,)
            if self.normalize_waveform:
                wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
            if wave.numel() < self.min_samples:  # shorter than one frame: pad with silence
                wave = nn.functional.pad(wave, (0, self.min_samples - wave.numel()))
            waves.append(wave)
        lengths = torch.tensor([w.numel() for w in waves])  # (B,)
        batch = torch.zeros(len(waves), int(lengths.max()))  # (B, T)
        for row, wave in enumerate(waves):
            batch[row, : wave.numel()] = wave
        return {"input_values": batch, "lengths": lengths}

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:  # (B,) samples → (B,) frames
        """Number of output frames for inputs of `lengths` samples."""
        get = getattr(self.model, "_get_feat_extract_output_lengths", None)
        if get is not None:
            return get(lengths).long()
        for kernel, stride in self._convs:
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths.long()

    def _hidden(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, F, dim)
        if self.backend == "transformers":
            mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]).long()
            return self.model(x, attention_mask=mask).last_hidden_state
        hidden, _ = self.model(x, lengths)
        return hidden

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, dim)
        x, lengths = inputs["input_values"], inputs["lengths"]  # (B, T), (B,)
        x = x.to(next(self.model.parameters()).dtype)
        if self.per_clip:  # no padding at all: each clip alone
            out = torch.cat([self._hidden(x[r: r + 1, : int(n)], lengths[r: r + 1]).mean(1)
                             for r, n in enumerate(lengths.tolist())])  # (B, dim)
        else:
            hidden = self._hidden(x, lengths)  # (B, F, dim)
            frames = self.frame_lengths(lengths)  # (B,)
            fmask = torch.arange(hidden.shape[1], device=x.device)[None] < frames[:, None]  # (B, F)
            fmask = fmask.unsqueeze(-1).to(hidden.dtype)  # (B, F, 1)
            out = (hidden * fmask).sum(1) / fmask.sum(1).clamp(min=1.0)  # (B, dim)
        out = out.float()
        return nn.functional.normalize(out, dim=-1) if self.normalize else out
