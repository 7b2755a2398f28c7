"""Weight-free, fast, deterministic encoders (no downloads): the demo, tests and baselines.

    text-hash    hashed word uni/bi-grams, sublinear tf, L2-normalised
    image-stats  grid colour means, hue histogram, saturation/value, edge orientations
    audio-mel    log-mel spectrogram mean and std over time, spectral centroid
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._backends import require
from .base import Encoder
from .errors import EncoderInputError
from .media import load_audio, load_image
from .registry import register_encoder

__all__ = ["TextHashEncoder", "ImageStatsEncoder", "AudioMelEncoder"]

_WORD = re.compile(r"\w+", re.UNICODE)


@register_encoder("text-hash")
class TextHashEncoder(Encoder):
    """Feature hashing of lower-cased word n-grams into `dim` buckets (signed, stable crc32)."""

    modality = "text"

    def __init__(self, dim: int = 256, ngram_range: Sequence[int] = (1, 2), normalize: bool = True) -> None:
        super().__init__()
        lo, hi = (int(x) for x in ngram_range)
        if dim < 1 or not 1 <= lo <= hi:
            raise EncoderInputError(f"need dim >= 1 and 1 <= ngram_range[0] <= [1]; got {dim}, {ngram_range}")
        self.dim, self.ngram_range, self.normalize = dim, (lo, hi), normalize

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        out = np.zeros((len(raw_batch), self.dim), np.float32)
        lo, hi = self.ngram_range
        for r, text in enumerate(raw_batch):
            if not isinstance(text, str):
                raise EncoderInputError(f"text-hash expects str items, got {type(text).__name__}")
            words = _WORD.findall(text.lower())
            counts: dict[tuple[int, float], float] = {}
            for n in range(lo, hi + 1):
                for i in range(len(words) - n + 1):
                    h = zlib.crc32(" ".join(words[i:i + n]).encode())
                    key = (h % self.dim, -1.0 if (h >> 31) & 1 else 1.0)  # bucket, sign
                    counts[key] = counts.get(key, 0.0) + 1.0
            for (bucket, sign), c in counts.items():
                out[r, bucket] += sign * (1.0 + math.log(c))
        return torch.from_numpy(out)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        return torch.nn.functional.normalize(inputs, dim=1) if self.normalize else inputs


@register_encoder("image-stats")
class ImageStatsEncoder(Encoder):
    """Colour layout, hue histogram and edge statistics of a downsized image."""

    modality = "image"
    str_is_path = True

    def __init__(self, size: int = 32, grid: int = 4, hue_bins: int = 12, edge_bins: int = 8) -> None:
        super().__init__()
        if size < grid or grid < 1 or hue_bins < 1 or edge_bins < 1:
            raise EncoderInputError(f"bad image-stats settings size={size}, grid={grid}")
        self.size, self.grid, self.hue_bins, self.edge_bins = size, grid, hue_bins, edge_bins
        self.dim = grid * grid * 3 + hue_bins + 2 + edge_bins

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        return torch.from_numpy(np.stack([self._features(load_image(x)) for x in raw_batch]))

    def _features(self, img: Any) -> np.ndarray:
        Image = require("PIL.Image", "image-stats")
        rgb = np.asarray(img.resize((self.size, self.size), Image.BILINEAR), np.float32) / 255.0
        g = self.grid
        cells = rgb[: self.size // g * g, : self.size // g * g].reshape(g, self.size // g, g, -1, 3)
        layout = cells.mean(axis=(1, 3)).ravel()  # (g*g*3,)
        hsv = np.asarray(img.resize((self.size, self.size)).convert("HSV"), np.float32) / 255.0
        sat, val = hsv[..., 1], hsv[..., 2]
        hue_hist = np.histogram(hsv[..., 0], bins=self.hue_bins, range=(0, 1), weights=sat)[0]
        hue_hist = hue_hist / max(hue_hist.sum(), 1e-6)
        gray = rgb.mean(-1)
        gy, gx = np.gradient(gray)
        mag = np.hypot(gx, gy)
        ang = np.mod(np.arctan2(gy, gx), np.pi)
        edges = np.histogram(ang, bins=self.edge_bins, range=(0, np.pi), weights=mag)[0]
        edges = edges / max(mag.sum(), 1e-6)
        return np.concatenate([layout, hue_hist, [sat.mean(), val.mean()], edges]).astype(np.float32)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        return inputs


@register_encoder("audio-mel")
class AudioMelEncoder(Encoder):
    """Mean and std over time of a log-mel spectrogram, plus spectral-centroid statistics."""

    modality = "audio"
    str_is_path = True

    def __init__(self, sample_rate: int = 16000, n_mels: int = 40, max_seconds: float = 5.0) -> None:
        super().__init__()
        if sample_rate < 1000 or n_mels < 1 or max_seconds <= 0:
            raise EncoderInputError(f"bad audio-mel settings sample_rate={sample_rate}, n_mels={n_mels}")
        self.sample_rate, self.n_mels, self.max_seconds = sample_rate, n_mels, max_seconds
        self.dim = 2 * n_mels + 2
        self._mel: Any = None

    def _melspec(self) -> Any:
        if self._mel is None:
            ta = require("torchaudio", "audio-mel")
            self._mel = ta.transforms.MelSpectrogram(sample_rate=self.sample_rate, n_fft=512,
                                                     hop_length=256, n_mels=self.n_mels)
        return self._mel

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        feats = []
        mel = self._melspec()
        freqs = torch.linspace(0, self.sample_rate / 2, self.n_mels)
        for item in raw_batch:
            wave = load_audio(item, self.sample_rate, self.max_seconds)  # (T,)
            if wave.numel() < 512:
                wave = torch.nn.functional.pad(wave, (0, 512 - wave.numel()))
            spec = mel(wave)  # (n_mels, frames)
            logm = torch.log(spec + 1e-6)
            w = spec / spec.sum(0, keepdim=True).clamp(min=1e-9)
            centroid = (w * freqs[:, None]).sum(0) / (self.sample_rate / 2)  # (frames,)
            feats.append(torch.cat([logm.mean(1) / 10, logm.std(1, correction=0) / 10,
                                    centroid.mean()[None], centroid.std(correction=0)[None]]))
        return torch.stack(feats).float()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        return inputs
