"""Synthetic multimodal data with a planted signal (for the demo, tests and benchmarks).

Users and items get latent factors; interactions are sampled from
softmax(⟨u, v⟩ / temperature + popularity). Item content carries the item factors with
noise, each modality a different part of them, so fusing modalities helps:

    text   factors 0–3: templated descriptions whose words depend on the factor signs/sizes
    image  factors 2–5: hue, shape (circle/square), stripe count and brightness
    audio  factors 4–7: pitch, harmonic richness, tremolo rate and noise level

`missing_rate` of items lack each modality (None). Deterministic by `seed`.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import InteractionData
from ..errors import DataError

__all__ = ["SyntheticDataset", "make_synthetic"]

_VOCAB = [
    (["bright", "upbeat", "joyful", "sunny"], ["dark", "gloomy", "somber", "bleak"]),
    (["fast", "energetic", "intense", "driving"], ["slow", "calm", "gentle", "relaxed"]),
    (["acoustic", "organic", "natural", "warm"], ["electronic", "synthetic", "digital", "cold"]),
    (["epic", "grand", "cinematic", "sweeping"], ["intimate", "minimal", "sparse", "quiet"]),
]
_FILLER = ["a", "track", "piece", "with", "and", "feel", "mood", "style", "sound", "vibe"]


@dataclass
class SyntheticDataset:
    """Interactions + in-memory content (text str, image uint8 (H, W, 3), audio (wave, sr))."""

    data: InteractionData
    user_factors: np.ndarray  # (n_users, n_factors)
    item_factors: np.ndarray  # (n_items, n_factors)
    sample_rate: int

    def content_table(self, modality: str) -> dict[str, Any]:
        """`{item_id: raw}` for the items that have `modality`."""
        if modality not in self.data.content:
            raise DataError(f"no {modality!r} content; available: {self.data.modalities}")
        ids = self.data.items.ids(np.arange(self.data.n_items))
        return {i: x for i, x in zip(ids, self.data.content[modality]) if x is not None}

    def write_media(self, directory: str | Path) -> dict[str, dict[str, str]]:
        """Write images as PNG and audio as WAV; returns `{modality: {item_id: path}}` tables
        (text stays inline)."""
        import soundfile as sf
        from PIL import Image

        root = Path(directory)
        out: dict[str, dict[str, str]] = {}
        for modality in self.data.modalities:
            table = self.content_table(modality)
            if modality == "text":
                out["text"] = table
                continue
            folder = root / modality
            folder.mkdir(parents=True, exist_ok=True)
            paths = {}
            for item, raw in table.items():
                if modality == "image":
                    path = folder / f"{item}.png"
                    Image.fromarray(raw).save(path)
                else:
                    path = folder / f"{item}.wav"
                    sf.write(path, raw[0], raw[1])
                paths[item] = str(path)
            out[modality] = paths
        return out


def _text(v: np.ndarray, rng: np.random.Generator, noise: float) -> str:
    words = []
    for f, (pos, neg) in enumerate(_VOCAB):
        strength = abs(v[f])
        vocab = pos if v[f] > 0 else neg
        for _ in range(1 + int(strength > 0.6) + int(strength > 1.2)):
            if rng.random() < noise:  # a random topic word instead
                pool = _VOCAB[rng.integers(len(_VOCAB))][rng.integers(2)]
                words.append(pool[rng.integers(len(pool))])
            else:
                words.append(vocab[rng.integers(len(vocab))])
    words += list(rng.choice(_FILLER, 4))
    rng.shuffle(words)
    return " ".join(words)


def _image(v: np.ndarray, rng: np.random.Generator, size: int, noise: float) -> np.ndarray:
    hue = (np.arctan2(v[3], v[2]) / (2 * np.pi)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 0.5 + 0.4 * np.tanh(v[5]) / 2 + 0.2)
    img = np.full((size, size, 3), 235, np.float32)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    shape = (xx**2 + yy**2 < 0.12) if v[4] > 0 else (np.maximum(abs(xx), abs(yy)) < 0.3)
    stripes = 1 + int(np.clip(2 + 1.5 * v[5], 0, 5))
    band = (np.floor((yy + 0.5) * stripes * 2) % 2) == 0
    img[shape] = np.array([r, g, b]) * 255
    img[shape & band] *= 0.7
    img += rng.normal(0, 60 * noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _audio(v: np.ndarray, rng: np.random.Generator, sr: int, seconds: float, noise: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f0 = 220.0 * 2 ** (np.tanh(v[4] / 1.5) * 1.5)  # ~ 78–620 Hz
    n_harm = 1 + int(np.clip(3 + 2 * v[5], 0, 7))
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n_harm + 1))
    tremolo = 1 + 0.5 * np.sin(2 * np.pi * (2 + 3 * np.tanh(v[6])) * t)
    wave = wave * tremolo
    wave = wave / (np.abs(wave).max() + 1e-9)
    wave += rng.normal(0, 0.05 + 0.3 * noise * (1 + np.tanh(v[7])), t.size)
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def make_synthetic(
    n_users: int = 600,
    n_items: int = 500,
    n_factors: int = 8,
    interactions_per_user: int = 20,
    modalities: tuple[str, ...] = ("text", "image", "audio"),
    missing_rate: float = 0.1,
    content_noise: float = 0.3,
    popularity_skew: float = 1.0,
    temperature: float = 0.5,
    image_size: int = 32,
    audio_seconds: float = 1.0,
    sample_rate: int = 16000,
    seed: int = 0,
) -> SyntheticDataset:
    """Generate users, items, interactions and content from planted factors."""
    if n_factors < 8:
        raise DataError(f"n_factors must be >= 8 (modalities read factors 0–7), got {n_factors}")
    if not 0 < interactions_per_user < n_items:
        raise DataError(f"interactions_per_user must be in (0, n_items), got {interactions_per_user}")
    bad = set(modalities) - {"text", "image", "audio"}
    if bad:
        raise DataError(f"unknown modalities {sorted(bad)}; choose from text, image, audio")
    if not 0 <= missing_rate < 1:
        raise DataError(f"missing_rate must be in [0, 1), got {missing_rate}")
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_users, n_factors)) / np.sqrt(n_factors) * 2
    V = rng.normal(size=(n_items, n_factors))
    pop = popularity_skew * rng.normal(size=n_items)
    logits = U @ V.T / temperature + pop[None, :]  # (n_users, n_items)
    gumbel = rng.gumbel(size=logits.shape)
    top = np.argpartition(-(logits + gumbel), interactions_per_user, axis=1)[:, :interactions_per_user]
    users = np.repeat(np.arange(n_users), interactions_per_user)
    items = top.ravel()
    user_ids = [f"user_{u:04d}" for u in range(n_users)]
    item_ids = [f"item_{i:04d}" for i in range(n_items)]
    content: dict[str, dict[str, Any]] = {}
    for m in modalities:
        table = {}
        for i in range(n_items):
            if rng.random() < missing_rate:
                continue
            if m == "text":
                table[item_ids[i]] = _text(V[i], rng, content_noise)
            elif m == "image":
                table[item_ids[i]] = _image(V[i], rng, image_size, content_noise)
            else:
                table[item_ids[i]] = (_audio(V[i], rng, sample_rate, audio_seconds, content_noise),
                                      sample_rate)
        content[m] = table
    times = rng.random(users.size) * 1e6
    data = InteractionData.from_arrays(
        [user_ids[u] for u in users], [item_ids[i] for i in items], timestamps=times,
        user_ids=user_ids, item_ids=item_ids, item_content=content)
    return SyntheticDataset(data, U.astype(np.float32), V.astype(np.float32), sample_rate)
