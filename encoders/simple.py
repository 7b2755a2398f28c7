"""Weight-free, fast, deterministic encoders: the demo, tests and examples run with no downloads.

    text-hash    signed feature hashing of lower-cased word n-grams, sublinear tf, L2-normalised
    image-stats  grid colour layout (RGB + HSV), hue histogram, gradient orientation/magnitude
    audio-mel    log-mel spectrogram mean/std over time, spectral centroid, loudness, modulation

Every feature is computed per item (a vector never depends on its batchmates) and is roughly
centred and scaled by fixed constants, so cosine similarity of the raw vectors is meaningful
and a linear projection trains well. None of them has trainable parameters.

    >>> from encoders import get_encoder
    >>> get_encoder("text-hash", dim=64).encode(["a quiet acoustic song"]).shape
    torch.Size([1, 64])
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._backends import require
from .base import Encoder
from .errors import EncoderConfigError, EncoderInputError
from .media import load_audio, load_image
from .registry import register_encoder

__all__ = ["TextHashEncoder", "ImageStatsEncoder", "AudioMelEncoder"]

_WORD = re.compile(r"\w+", re.UNICODE)


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise EncoderConfigError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _clr(hist: np.ndarray, floor: float) -> np.ndarray:
    """Centred log of a histogram's proportions: scale-free, zero-mean, bounded."""
    p = hist / max(float(hist.sum()), 1e-12)
    logp = np.log(p + floor)
    return logp - logp.mean()


# ----------------------------------------------------------------------------------- text
@functools.lru_cache(maxsize=1 << 16)
def _hash64(gram: str) -> int:
    """Stable unsigned 64-bit hash of an n-gram (blake2b; Python's `hash` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")


@register_encoder("text-hash")
class TextHashEncoder(Encoder):
    """Feature hashing of lower-cased word n-grams into `dim` signed buckets.

    Each n-gram is hashed with blake2b (stable across processes and platforms, unlike
    Python's `hash`); one hash bit picks the sign so collisions cancel on average. Counts are
    sublinear (1 + log tf). An empty text gives the zero vector.

    Args:
        dim: number of hash buckets (output size).
        ngram_range: [min_n, max_n] word n-gram lengths, e.g. [1, 2] for unigrams + bigrams.
        normalize: L2-normalise each vector.
    """

    modality = "text"

    def __init__(self, dim: int = 256, ngram_range: Sequence[int] = (1, 2), normalize: bool = True) -> None:
        super().__init__()
        self.dim = _positive_int("dim", dim)
        if not isinstance(ngram_range, (list, tuple)) or len(ngram_range) != 2:
            raise EncoderConfigError(
                f"ngram_range must be two ints [min_n, max_n], e.g. [1, 2]; got {ngram_range!r}"
            )
        lo, hi = (_positive_int("ngram_range values", x) for x in ngram_range)
        if lo > hi:
            raise EncoderConfigError(f"ngram_range must satisfy 1 <= min_n <= max_n, got {ngram_range!r}")
        if not isinstance(normalize, bool):
            raise EncoderConfigError(f"normalize must be True or False, got {normalize!r}")
        self.ngram_range, self.normalize = (lo, hi), normalize
        self.__dict__["_init_kwargs"]["ngram_range"] = [lo, hi]  # JSON form: config round-trips

    def _bucket(self, gram: str) -> tuple[int, float]:
        h = _hash64(gram)
        return h % self.dim, (-1.0 if h >> 63 else 1.0)

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        out = np.zeros((len(raw_batch), self.dim), np.float32)
        lo, hi = self.ngram_range
        for row, text in enumerate(raw_batch):
            if not isinstance(text, str):
                raise EncoderInputError(
                    f"text-hash item {row} is a {type(text).__name__}, expected str; "
                    "drop missing items (None) or convert them to strings first"
                )
            words = _WORD.findall(text.lower())
            counts: dict[str, int] = {}
            for n in range(lo, hi + 1):
                for i in range(len(words) - n + 1):
                    gram = " ".join(words[i:i + n])
                    counts[gram] = counts.get(gram, 0) + 1
            for gram, count in counts.items():
                bucket, sign = self._bucket(gram)
                out[row, bucket] += sign * (1.0 + math.log(count))
        return torch.from_numpy(out)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        return torch.nn.functional.normalize(inputs, dim=1) if self.normalize else inputs


# ----------------------------------------------------------------------------------- image
def _rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) floats in [0, 1] → hue in [0, 1), saturation, value, each (H, W)."""
    maxc, minc = rgb.max(-1), rgb.min(-1)
    delta = maxc - minc
    sat = np.where(maxc > 0, delta / np.maximum(maxc, 1e-12), 0.0)
    safe = np.maximum(delta, 1e-12)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(maxc == r, (g - b) / safe, np.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(delta > 0, (hue / 6.0) % 1.0, 0.0)
    return hue, sat, maxc


@register_encoder("image-stats")
class ImageStatsEncoder(Encoder):
    """Hand-made colour, layout and edge statistics of an image resized to `size`×`size`.

    Features (dim = grid²·6 + hue_bins + 1 + 2·edge_bins + 3):
      layout      per cell of a grid×grid layout: mean R, G, B, S·cos(hue), S·sin(hue), V
                  (hue as a saturation-weighted angle, so red does not wrap), centred
      colour      saturation-weighted hue histogram + one achromatic bin (centred log)
      orientation gradient-magnitude-weighted histogram of edge angles mod π (centred log)
      magnitude   histogram of gradient magnitudes on fixed log-spaced bins (centred log)
      global      mean saturation, mean value, log mean gradient magnitude

    Inputs: PIL images, file paths (png/jpeg/...) or uint8 arrays (H, W[, C]).
    """

    modality = "image"
    str_is_path = True

    def __init__(self, size: int = 32, grid: int = 4, hue_bins: int = 12, edge_bins: int = 8) -> None:
        super().__init__()
        self.size = _positive_int("size", size, 4)
        self.grid = _positive_int("grid", grid)
        if self.grid > self.size:
            raise EncoderConfigError(f"grid={grid} must be <= size={size}; lower grid or raise size")
        self.hue_bins = _positive_int("hue_bins", hue_bins)
        self.edge_bins = _positive_int("edge_bins", edge_bins)
        self.dim = self.grid**2 * 6 + self.hue_bins + 1 + 2 * self.edge_bins + 3

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        return torch.from_numpy(np.stack([self._features(load_image(x)) for x in raw_batch]))

    def _features(self, img: Any) -> np.ndarray:  # (dim,)
        Image = require("PIL.Image", "the image-stats encoder")
        s, g = self.size, self.grid
        rgb = np.asarray(img.resize((s, s), Image.BILINEAR), np.float64) / 255.0  # (s, s, 3)
        hue, sat, val = _rgb_to_hsv(rgb)
        angle = 2 * np.pi * hue
        planes = np.stack([rgb[..., 0], rgb[..., 1], rgb[..., 2],
                           sat * np.cos(angle), sat * np.sin(angle), val], -1)  # (s, s, 6)
        edges = np.linspace(0, s, g + 1).astype(int)[:-1]
        sums = np.add.reduceat(np.add.reduceat(planes, edges, axis=0), edges, axis=1)  # (g, g, 6)
        counts = np.diff(np.append(edges, s))
        cells = sums / (counts[:, None, None] * counts[None, :, None])
        cells[..., [0, 1, 2, 5]] -= 0.5  # centre the [0, 1] channels
        layout = 2.0 * cells.ravel()  # (g*g*6,)

        hue_hist = np.histogram(hue, bins=self.hue_bins, range=(0, 1), weights=sat)[0]
        colour = _clr(np.append(hue_hist, (1.0 - sat).sum()), 0.02)  # (hue_bins + 1,)

        gray = rgb @ np.array([0.299, 0.587, 0.114])  # (s, s)
        gy, gx = np.gradient(gray)
        mag = np.hypot(gx, gy)
        theta = np.mod(np.arctan2(gy, gx), np.pi)
        orient = _clr(np.histogram(theta, bins=self.edge_bins, range=(0, np.pi), weights=mag)[0]
                      + 1e-6, 0.02)
        mag_edges = np.concatenate([[0.0], np.geomspace(0.005, 0.5, self.edge_bins - 1), [np.inf]])
        magnitude = _clr(np.histogram(mag, bins=mag_edges)[0].astype(np.float64), 0.02)
        global_ = np.array([2 * sat.mean() - 0.5, 2 * val.mean() - 1.0,
                            (np.log(mag.mean() + 1e-4) + 3.0) / 2.0])
        return np.concatenate([layout, colour, orient, magnitude, global_]).astype(np.float32)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        return inputs


# ----------------------------------------------------------------------------------- audio
def _mel_filterbank(n_fft: int, sample_rate: int, n_mels: int) -> np.ndarray:  # (n_fft//2+1, n_mels)
    """Triangular HTK-mel filters from 0 Hz to Nyquist (the same shape as torchaudio's default)."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    points = mel_to_hz(np.linspace(0, hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = points[:-2], points[1:-1], points[2:]
    up = (freqs[:, None] - lower) / np.maximum(centre - lower, 1e-9)
    down = (upper - freqs[:, None]) / np.maximum(upper - centre, 1e-9)
    return np.maximum(0.0, np.minimum(up, down))


@register_encoder("audio-mel")
class AudioMelEncoder(Encoder):
    """Summary statistics of a log-mel spectrogram (~32 ms windows, 50% overlap).

    Features (dim = 2·n_mels + 8):
      spectrum    per mel band: mean log-power over time minus its mean over bands
                  (the spectral shape: pitch, timbre), then std over time (the dynamics)
      centroid    spectral centroid mean and std over time (brightness)
      loudness    mean and std of frame log-energy
      modulation  share of envelope energy modulated at 0.5–2, 2–4, 4–8, 8–16 Hz (rhythm)

    Inputs: file paths (wav/flac/ogg), `(waveform, sample_rate)` tuples, or 1-D arrays at
    `sample_rate`. Other rates are resampled; clips are cropped to `max_seconds`.
    """

    modality = "audio"
    str_is_path = True
    _MOD_BANDS = ((0.5, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0))

    def __init__(self, sample_rate: int = 16000, n_mels: int = 40, max_seconds: float = 5.0) -> None:
        super().__init__()
        self.sample_rate = _positive_int("sample_rate", sample_rate, 1000)
        self.n_mels = _positive_int("n_mels", n_mels)
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not (
                0 < max_seconds < math.inf):
            raise EncoderConfigError(f"max_seconds must be a positive number, got {max_seconds!r}")
        self.max_seconds = float(max_seconds)
        self.n_fft = 2 ** max(6, round(math.log2(0.032 * self.sample_rate)))  # 512 at 16 kHz
        self.hop = self.n_fft // 2
        if self.n_mels > self.n_fft // 4:
            raise EncoderConfigError(
                f"n_mels={n_mels} is too many for a {self.n_fft}-point FFT at {sample_rate} Hz; "
                f"use n_mels <= {self.n_fft // 4}"
            )
        self.dim = 2 * self.n_mels + 8
        # plain attributes, not buffers: fixed maths, not weights (used on CPU in preprocess)
        self._fbank = torch.from_numpy(_mel_filterbank(self.n_fft, self.sample_rate, self.n_mels))
        self._window = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64)

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        feats = [self._features(load_audio(x, self.sample_rate, self.max_seconds)) for x in raw_batch]
        return torch.stack(feats).float()

    def _features(self, wave: torch.Tensor) -> torch.Tensor:  # (T,) -> (dim,)
        wave = wave.double()
        if wave.numel() < self.n_fft:
            wave = torch.nn.functional.pad(wave, (0, self.n_fft - wave.numel()))
        spec = torch.stft(wave, self.n_fft, self.hop, window=self._window, center=False,
                          return_complex=True).abs() ** 2  # (n_freq, frames)
        mel = self._fbank.T @ spec  # (n_mels, frames)
        logmel = torch.log10(mel + 1e-10)
        logmel = torch.maximum(logmel, logmel.max() - 8.0)  # 80 dB dynamic range
        mean = logmel.mean(1)
        shape = (mean - mean.mean()) / 2.0  # (n_mels,)
        dyn = logmel.std(1, correction=0)  # (n_mels,)
        freqs = torch.linspace(0, 1, spec.shape[0], dtype=torch.float64)
        power = spec.sum(0)  # (frames,)
        centroid = (freqs[:, None] * spec).sum(0) / power.clamp(min=1e-12)  # (frames,) in [0, 1]
        mean_square = 2.0 * power / (self.n_fft * self._window.pow(2).sum())  # Parseval, (frames,)
        energy = torch.log10(mean_square + 1e-10)
        energy = torch.maximum(energy, energy.max() - 8.0)
        return torch.cat([shape, dyn, torch.stack([
            4.0 * centroid.mean() - 1.0, 4.0 * centroid.std(correction=0),
            (energy.mean() + 2.0) / 2.0, energy.std(correction=0),
        ]), self._modulation(energy)])

    def _modulation(self, energy: torch.Tensor) -> torch.Tensor:  # (frames,) -> (4,)
        """Centred-log shares of the frame-energy envelope's spectrum in the rhythm bands."""
        rate = self.sample_rate / self.hop  # frames per second
        n = max(energy.numel(), int(2 * rate))  # zero-pad short clips to >= 2 s: 0.5 Hz bins
        env = torch.nn.functional.pad(energy - energy.mean(), (0, n - energy.numel()))
        power = torch.fft.rfft(env).abs() ** 2
        hz = torch.fft.rfftfreq(n, d=1.0 / rate, dtype=torch.float64)
        bands = np.array([float(power[(hz >= lo) & (hz < hi)].sum()) for lo, hi in self._MOD_BANDS])
        return torch.from_numpy(_clr(bands + 1e-9, 0.05) / 2.0)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        return inputs
