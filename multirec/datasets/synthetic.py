"""Synthetic multimodal data with a planted signal (for the demo, tests and benchmarks).

Users and items get latent factors u, v ~ N(0, ·) and items a log-popularity b. Each user's
interactions are drawn without replacement from softmax(⟨u, v⟩ / temperature + b) (Gumbel
top-k), so ranking by the true factors scores a high NDCG and popularity alone clearly less.

Item content carries the item factors with noise (`content_noise` is the std of the noise
added to the factors before rendering, plus random nuisance detail). Each modality shows a
different, overlapping part of the factors, so fusing modalities helps:

    text   factors 0–3  templated description: per factor a graded positive/negative
                        vocabulary, a genre tag from the dominant factor, random filler
    image  factors 2–5  hue and saturation (2, 3), shape circle/square/stripes (4),
                        texture frequency and brightness (5); jittered position, pixel noise
    audio  factors 4–7  pitch (4), timbre = harmonic roll-off (5), tremolo rate (6),
                        breathiness = noise level (7); random phases, background noise

Factors beyond 7 (when n_factors > 8) are seen only in the interactions. A `missing_rate`
fraction of items lacks each modality (None in `data.content`). Everything is deterministic
by `seed`, and the interactions do not depend on which modalities are generated.

    ds = make_synthetic(n_users=100, n_items=80, seed=0)
    ds.data                                # InteractionData, content in memory
    tables = ds.write_media("media/")      # png + wav files: {modality: {item_id: path}}
    ds.true_scores()                       # (n_users, n_items) planted preference logits
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import InteractionData
from ..errors import DataError

__all__ = ["SyntheticDataset", "make_synthetic", "MODALITY_FACTORS"]

MODALITY_FACTORS: dict[str, tuple[int, ...]] = {
    "text": (0, 1, 2, 3), "image": (2, 3, 4, 5), "audio": (4, 5, 6, 7),
}

# per text factor: (positive words, negative words), strongest last
_VOCAB = [
    (["bright", "upbeat", "joyful"], ["dark", "gloomy", "mournful"]),
    (["fast", "energetic", "frantic"], ["slow", "calm", "sleepy"]),
    (["acoustic", "organic", "earthy"], ["electronic", "synthetic", "robotic"]),
    (["epic", "grand", "cinematic"], ["intimate", "minimal", "hushed"]),
]
_GENRES = [("sunpop", "doomfolk"), ("speedcore", "ambient"), ("folk", "techno"), ("orchestral", "lofi")]
_NOUNS = ["track", "piece", "song", "tune", "number", "cut"]
_FILLER = ["with", "and", "a", "the", "some", "of", "feel", "mood", "vibe", "sound", "made", "for",
           "late", "night", "listening", "really", "quite", "very", "new", "release"]
_TEMPLATES = [
    "{tag} {noun}: a {w0} and {w1} {noun} with {w2} {w3} sound. {filler}",
    "{filler} this {w0} {w1} {noun} feels {w2} and {w3}. #{tag}",
    "{w0}, {w1}, {w2}, {w3}: a {tag} {noun} {filler}",
]


@dataclass
class SyntheticDataset:
    """Interactions + in-memory content and the ground truth that generated them.

    Attributes:
        data: `InteractionData`; `data.content` holds text `str`, image uint8 arrays
            (H, W, 3) and audio `(float32 waveform (T,), sample_rate)` tuples, None if missing.
        user_factors: (n_users, n_factors) float32 true user factors.
        item_factors: (n_items, n_factors) float32 true item factors.
        item_popularity: (n_items,) float32 true log-popularity bias.
        sample_rate: audio sample rate in Hz.
        temperature: the softmax temperature of the interaction model.
    """

    data: InteractionData
    user_factors: np.ndarray  # (n_users, n_factors)
    item_factors: np.ndarray  # (n_items, n_factors)
    item_popularity: np.ndarray  # (n_items,)
    sample_rate: int
    temperature: float = 1.0

    def true_scores(self) -> np.ndarray:  # (n_users, n_items)
        """The planted preference logits ⟨u, v⟩ / temperature + popularity."""
        return self.user_factors @ self.item_factors.T / self.temperature + self.item_popularity[None]

    def content_table(self, modality: str) -> dict[str, Any]:
        """`{item_id: raw content}` for the items that have `modality` (missing ones left out)."""
        if modality not in self.data.content:
            raise DataError(
                f"no {modality!r} content in this data set; available: {self.data.modalities}. "
                "Pass it in make_synthetic(modalities=...)"
            )
        ids = self.data.items.ids(np.arange(self.data.n_items))
        return {i: x for i, x in zip(ids, self.data.content[modality]) if x is not None}

    def write_media(self, directory: str | os.PathLike) -> dict[str, dict[str, str]]:
        """Write images as `<dir>/image/<id>.png` and audio as `<dir>/audio/<id>.wav` (float32,
        lossless), and return `{modality: {item_id: path}}` content tables. Text stays inline
        (`{item_id: str}`). Existing files of the same name are overwritten."""
        from encoders._backends import require

        root = Path(directory)
        out: dict[str, dict[str, str]] = {}
        for modality in self.data.modalities:
            table = self.content_table(modality)
            if modality == "text":
                out[modality] = dict(table)
                continue
            folder = root / modality
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(f"cannot create media folder {str(folder)!r}: {exc}; pick a writable "
                                "directory") from exc
            paths: dict[str, str] = {}
            for item, raw in table.items():
                if modality == "image":
                    path = folder / f"{item}.png"
                    require("PIL.Image", "writing synthetic images").fromarray(raw).save(path)
                else:
                    path = folder / f"{item}.wav"
                    wave, sr = raw
                    require("soundfile", "writing synthetic audio").write(str(path), wave, sr,
                                                                          subtype="FLOAT")
                paths[item] = str(path)
            out[modality] = paths
        return out


# ---------------------------------------------------------------------------------- content
def _text(v: np.ndarray, rng: np.random.Generator) -> str:
    """Description from factors 0–3 of the (noisy) item vector `v`."""
    slots = []
    for f, (pos, neg) in enumerate(_VOCAB):
        words = pos if v[f] > 0 else neg
        level = int(np.clip(abs(v[f]) / 0.6, 0, 2))  # 0, 1, 2: mild → strong
        slots.append(" ".join(words[: level + 1]))  # graded: strong items share the mild word too
    dom = int(np.argmax(np.abs(v[:4])))
    tag = _GENRES[dom][0 if v[dom] > 0 else 1]
    filler = " ".join(rng.choice(_FILLER, size=int(rng.integers(2, 6))))
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(tag=tag, noun=_NOUNS[int(rng.integers(len(_NOUNS)))], filler=filler,
                           w0=slots[0], w1=slots[1], w2=slots[2], w3=slots[3])


def _image(v: np.ndarray, rng: np.random.Generator, size: int, noise: float) -> np.ndarray:
    """(size, size, 3) uint8 picture from factors 2–5 of `v`."""
    hue = (np.arctan2(v[3], v[2]) / (2 * np.pi)) % 1.0
    sat = 0.25 + 0.7 * np.tanh(np.hypot(v[2], v[3]) / 1.2)
    bright = 0.55 + 0.35 * np.tanh(v[5])
    colour = np.array(colorsys.hsv_to_rgb(hue, sat, bright))
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size - 0.5  # (size, size) in [-0.5, 0.5]
    cy, cx = rng.uniform(-0.08, 0.08, 2)
    yy, xx = yy - cy, xx - cx
    if v[4] < -0.43:  # circle
        shape = xx**2 + yy**2 < 0.33**2
    elif v[4] < 0.43:  # square
        shape = np.maximum(abs(xx), abs(yy)) < 0.29
    else:  # stripes across the frame
        shape = np.cos(2 * np.pi * 3 * yy) > 0.0
    cycles = 2.0 + 3.0 * (1.0 + np.tanh(v[5]))  # texture frequency 2..8 per image width
    texture = 1.0 - 0.3 * (np.cos(2 * np.pi * cycles * (xx + yy) / np.sqrt(2)) > 0)
    background = rng.uniform(0.82, 0.95)
    img = np.full((size, size, 3), background)
    img[shape] = colour * texture[shape][:, None]
    img += rng.normal(0.0, 0.02 + 0.08 * noise, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def _audio(v: np.ndarray, rng: np.random.Generator, sr: int, seconds: float,
           noise: float) -> np.ndarray:
    """(T,) float32 waveform in [-0.5, 0.5] from factors 4–7 of `v`."""
    t = np.arange(max(1, int(round(sr * seconds)))) / sr  # (T,)
    f0 = 110.0 * 2 ** (1.6 + 1.3 * np.tanh(v[4] / 1.2))  # ~ 140–750 Hz
    rolloff = 1.7 - 1.2 * np.tanh(v[5])  # harmonic amplitude ∝ k^-rolloff: bright ↔ dull
    k = np.arange(1, 13)
    amps = np.where(f0 * k < 0.45 * sr, k ** -rolloff, 0.0)  # (12,) no aliasing
    phases = rng.uniform(0, 2 * np.pi, k.size)
    tone = np.sin(2 * np.pi * f0 * np.outer(k, t) + phases[:, None]).T @ amps  # (T,)
    rate = 4.0 * 2 ** (1.5 * np.tanh(v[6]))  # tremolo 1.4–11 Hz
    tone *= 1.0 + 0.8 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    tone /= np.abs(tone).max() + 1e-9
    breath = 0.03 + 0.35 / (1.0 + np.exp(-1.5 * v[7]))  # noise level 0.03–0.38
    wave = tone + rng.normal(0.0, breath + 0.05 * noise, t.size)
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


# ---------------------------------------------------------------------------------- generator
def _check_int(name: str, value: Any, low: int, high: float = np.inf) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        bound = f"between {low} and {int(high)}" if np.isfinite(high) else f">= {low}"
        raise DataError(f"{name} must be an int {bound}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, low: float, high: float = np.inf, *,
                 low_open: bool = False) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
          and np.isfinite(value) and (value > low if low_open else value >= low) and value <= high)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if np.isfinite(high) else "")
        raise DataError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def make_synthetic(
    n_users: int = 600,
    n_items: int = 500,
    n_factors: int = 8,
    interactions_per_user: int = 20,
    modalities: tuple[str, ...] | list[str] = ("text", "image", "audio"),
    missing_rate: float = 0.1,
    content_noise: float = 0.3,
    popularity_skew: float = 1.0,
    image_size: int = 32,
    audio_seconds: float = 1.0,
    sample_rate: int = 16000,
    seed: int = 0,
    temperature: float = 0.5,
) -> SyntheticDataset:
    """Generate users, items, interactions and multimodal item content from planted factors.

    Args:
        n_users, n_items: catalogue sizes; IDs are "user_0000"…, "item_0000"….
        n_factors: latent dimensions (>= 8: the modalities render factors 0–7).
        interactions_per_user: distinct items per user (<= n_items).
        modalities: any of "text", "image", "audio".
        missing_rate: fraction of items lacking each modality (drawn per modality).
        content_noise: std of the noise added to the item factors before rendering content.
        popularity_skew: std of the item log-popularity (0: no popularity effect).
        image_size: image side in pixels; audio_seconds, sample_rate: clip length and rate.
        seed: seeds everything. temperature: softmax temperature of the preferences.
    """
    n_users = _check_int("n_users", n_users, 1)
    n_items = _check_int("n_items", n_items, 2)
    n_factors = _check_int("n_factors", n_factors, 8)
    k = _check_int("interactions_per_user", interactions_per_user, 1, n_items)
    if isinstance(modalities, str):
        modalities = (modalities,)
    modalities = tuple(modalities)
    bad = [m for m in modalities if m not in MODALITY_FACTORS]
    if bad or len(set(modalities)) != len(modalities):
        raise DataError(f"modalities must be distinct names from {list(MODALITY_FACTORS)}, "
                        f"got {list(modalities)}")
    missing_rate = _check_float("missing_rate", missing_rate, 0.0, 1.0)
    content_noise = _check_float("content_noise", content_noise, 0.0)
    popularity_skew = _check_float("popularity_skew", popularity_skew, 0.0)
    image_size = _check_int("image_size", image_size, 8)
    audio_seconds = _check_float("audio_seconds", audio_seconds, 0.0, low_open=True)
    sample_rate = _check_int("sample_rate", sample_rate, 4000)
    temperature = _check_float("temperature", temperature, 0.0, low_open=True)
    seed = _check_int("seed", seed, 0)

    # independent streams: the interactions do not change with the modalities asked for
    streams = np.random.SeedSequence(seed).spawn(1 + len(MODALITY_FACTORS))
    rng = np.random.default_rng(streams[0])
    U = rng.normal(size=(n_users, n_factors)) * (2.0 / np.sqrt(n_factors))  # ⟨u, v⟩ has std ~2
    V = rng.normal(size=(n_items, n_factors))
    pop = popularity_skew * rng.normal(size=n_items)
    logits = U @ V.T / temperature + pop[None, :]  # (n_users, n_items)
    # Gumbel top-k = k draws without replacement from softmax(logits), in draw order
    keys = logits + rng.gumbel(size=logits.shape)
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k] if k < n_items else np.tile(np.arange(n_items),
                                                                                    (n_users, 1))
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, 1), axis=1), 1)
    users = np.repeat(np.arange(n_users), k)
    items = top.ravel()
    start = rng.uniform(0, 1e6, size=n_users)  # per-user session start, then one event a minute
    times = (start[:, None] + 60.0 * np.arange(k)[None, :]).ravel()

    user_ids = [f"user_{u:04d}" for u in range(n_users)]
    item_ids = [f"item_{i:04d}" for i in range(n_items)]
    n_missing = int(round(missing_rate * n_items))
    content: dict[str, dict[str, Any]] = {}
    for m, stream in zip(MODALITY_FACTORS, streams[1:]):
        if m not in modalities:
            continue
        mrng = np.random.default_rng(stream)
        noisy = V + content_noise * mrng.normal(size=V.shape)
        missing = set(mrng.choice(n_items, size=n_missing, replace=False).tolist())
        table: dict[str, Any] = {}
        for i in range(n_items):
            if i in missing:
                continue
            if m == "text":
                table[item_ids[i]] = _text(noisy[i], mrng)
            elif m == "image":
                table[item_ids[i]] = _image(noisy[i], mrng, image_size, content_noise)
            else:
                table[item_ids[i]] = (_audio(noisy[i], mrng, sample_rate, audio_seconds, content_noise),
                                      sample_rate)
        content[m] = table
    content = {m: content[m] for m in modalities}  # keep the caller's order
    data = InteractionData.from_arrays(
        [user_ids[u] for u in users], [item_ids[i] for i in items], timestamps=times,
        user_ids=user_ids, item_ids=item_ids, item_content=content)
    return SyntheticDataset(data, U.astype(np.float32), V.astype(np.float32), pop.astype(np.float32),
                            sample_rate, temperature)
