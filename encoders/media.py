"""Reading raw media (audio, images) into arrays, shared by the built-in encoders.

Audio: file paths (wav/flac/ogg through soundfile), `(waveform, sample_rate)` tuples, or
1-D/2-D arrays already at the target rate. Images: PIL images, file paths, or uint8 arrays
(H, W[, C]). Errors name the bad input and what to pass instead.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._backends import require
from .errors import EncoderInputError

__all__ = ["load_audio", "load_image"]


def _to_mono(wave: np.ndarray, what: str) -> np.ndarray:  # (T,)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        # soundfile gives (T, C); users often pass (C, T). The channel axis is the short one.
        wave = wave.mean(axis=1) if wave.shape[0] >= wave.shape[1] else wave.mean(axis=0)
    if wave.ndim != 1:
        raise EncoderInputError(f"{what}: expected a 1-D or 2-D waveform, got shape {wave.shape}")
    if wave.size == 0:
        raise EncoderInputError(f"{what}: the waveform is empty")
    if not np.isfinite(wave).all():
        raise EncoderInputError(f"{what}: the waveform contains NaN or inf samples")
    return wave


def _read_audio_file(sf: Any, path: Path, max_seconds: float | None,
                     target_sr: int) -> tuple[np.ndarray, int]:  # (T[, C]), rate
    """Decode only the frames the crop keeps (plus a margin for the resampling filter)."""
    with sf.SoundFile(str(path)) as f:
        sr = int(f.samplerate)
        frames = -1  # all
        if max_seconds is not None:
            keep = max(1, int(round(max_seconds * target_sr)))  # samples kept at target_sr
            frames = math.ceil(keep * sr / target_sr) + (0 if sr == target_sr else sr // 100 + 64)
        return f.read(frames=frames, dtype="float32", always_2d=False), sr


def load_audio(item: Any, target_sr: int, max_seconds: float | None = None) -> torch.Tensor:  # (T,)
    """Return a mono float32 waveform at `target_sr`, cropped to `max_seconds` if given.

    `item` is a path (wav/flac/ogg), a `(waveform, sample_rate)` tuple, or an array already
    sampled at `target_sr`. Stereo is mixed down; other rates are resampled with torchaudio.
    Files are decoded only up to `max_seconds` (a 10-minute file costs what its first
    `max_seconds` cost).
    """
    if isinstance(item, (str, os.PathLike)):
        sf = require("soundfile", "reading audio files")
        path = Path(item)
        if not path.is_file():
            raise EncoderInputError(f"audio file not found: {str(path)!r}")
        try:
            wave, sr = _read_audio_file(sf, path, max_seconds, target_sr)
        except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
            raise EncoderInputError(
                f"cannot read audio file {str(path)!r} ({exc}); use wav, flac or ogg, or pass "
                "a (waveform, sample_rate) tuple"
            ) from exc
        what = str(path)
    elif isinstance(item, tuple) and len(item) == 2:
        wave, sr = item
        if isinstance(wave, torch.Tensor):
            wave = wave.detach().cpu().numpy()
        what = "audio (waveform, sample_rate) tuple"
    elif isinstance(item, (np.ndarray, torch.Tensor)):
        wave = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
        sr, what = target_sr, "audio array"
    else:
        raise EncoderInputError(
            f"unsupported audio input of type {type(item).__name__}; pass a file path, a "
            "(waveform, sample_rate) tuple or a 1-D array at the encoder's sample rate"
        )
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise EncoderInputError(f"{what}: sample rate must be a positive int, got {sr!r}")
    mono = torch.from_numpy(np.ascontiguousarray(_to_mono(wave, what)))
    if int(sr) != int(target_sr):
        ta = require("torchaudio", "resampling audio")
        mono = ta.functional.resample(mono, int(sr), int(target_sr))
    if max_seconds is not None:
        mono = mono[: max(1, int(round(max_seconds * target_sr)))]
    return mono


def load_image(item: Any) -> Any:
    """Return an RGB `PIL.Image` from a PIL image, a file path, or a uint8 array (H, W[, C])."""
    Image = require("PIL.Image", "reading images")
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise EncoderInputError(f"image file not found: {str(path)!r}")
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except Exception as exc:  # PIL.UnidentifiedImageError, OSError on truncation
            raise EncoderInputError(
                f"cannot read image file {str(path)!r} ({exc}); use png/jpeg/webp files"
            ) from exc
    if isinstance(item, (np.ndarray, torch.Tensor)):
        arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
        bad_shape = arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4))
        if arr.dtype != np.uint8 or bad_shape:
            raise EncoderInputError(
                f"image arrays must be uint8 with shape (H, W), (H, W, 3) or (H, W, 4); got "
                f"dtype {arr.dtype} and shape {arr.shape}"
            )
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        return Image.fromarray(arr).convert("RGB")
    raise EncoderInputError(
        f"unsupported image input of type {type(item).__name__}; pass a PIL image, a file path "
        "or a uint8 array"
    )
