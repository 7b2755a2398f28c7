"""A user-defined encoder: tabular item metadata as one more modality.

What it shows, in order:

1. `MetadataEncoder`: item metadata dicts ({"year": 1994, "minutes": 42, "language": "en",
   "genres": ["jazz", "drama"]}) → fixed-size vectors, registered with
   `@register_encoder("metadata")`. Two methods (`preprocess`, `forward`) and a `dim`;
   constructor arguments are recorded automatically, so the encoder is saved as a JSON
   config and rebuilt by name;
2. a `MultimodalRecommender` that fuses it with a text encoder and LightFM factors;
3. `save_pretrained` / `from_pretrained`: the loaded model gives identical
   recommendations, also for a new item added afterwards from its metadata alone (which
   makes the loaded model rebuild the encoder from `{"name": "metadata", ...}`).

A loaded model scores and recommends without building its encoders (the item vectors are
saved with it). Adding items or searching rebuilds the encoder from its registered name, and
registration happens when this module is imported: a process that loads such a model must
import the module defining the encoder first, or `add_items` raises `UnknownEncoderError`
listing the registered names.

    python examples/custom_encoder.py --small          # seconds, offline
    python examples/custom_encoder.py --out custom-out # bigger run; the model stays in custom-out/model

Real data: give your items a `{"metadata": {item_id: {...}}}` content table (any JSON-like
fields) next to text/image/audio and adapt `preprocess` to your columns; the rest is the same.
The run writes `<out>/results.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders import Encoder, EncoderInputError, get_encoder, register_encoder
from multirec import InteractionData, MultimodalRecommender
from multirec.io import read_config
from multirec.utils import torch_threads

GENRES = ["jazz", "drama", "science", "comedy"]
LANGUAGES = ["en", "de", "fr"]
SIZES = {"small": (80, 48, 10, 8), "default": (400, 240, 20, 30)}  # users, items, per user, epochs


@register_encoder("metadata")
class MetadataEncoder(Encoder):
    """Tabular metadata → [genre multi-hot | language one-hot + other | year | log minutes].

    Args:
        genres: known genre names (others are ignored).
        languages: known language codes (others go to an "other" slot).
        years: [first, last] year mapped linearly to [-1, 1].
    """

    modality = "metadata"

    def __init__(self, genres: Sequence[str], languages: Sequence[str],
                 years: Sequence[int] = (1950, 2030)) -> None:
        super().__init__()
        self.genres, self.languages = list(genres), list(languages)
        self.years = (float(years[0]), float(years[1]))
        self.dim = len(self.genres) + len(self.languages) + 1 + 2

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        rows = np.zeros((len(raw_batch), self.dim), np.float32)
        n_g, n_l = len(self.genres), len(self.languages)
        for r, item in enumerate(raw_batch):
            if not isinstance(item, dict):
                raise EncoderInputError(f"metadata item {r} is a {type(item).__name__}, expected a "
                                        "dict like {'year': 1994, 'genres': ['jazz']}")
            for g in item.get("genres", []):
                if g in self.genres:
                    rows[r, self.genres.index(g)] = 1.0
            lang = item.get("language")
            rows[r, n_g + (self.languages.index(lang) if lang in self.languages else n_l)] = 1.0
            first, last = self.years
            year = float(item.get("year", (first + last) / 2))
            rows[r, -2] = 2.0 * (year - first) / (last - first) - 1.0
            rows[r, -1] = math.log1p(max(float(item.get("minutes", 0.0)), 0.0)) / 5.0
        return torch.from_numpy(rows)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        # No weights: the model's projection layer learns what matters. An encoder with
        # trainable parameters (say an nn.Linear here) is fine-tuned end to end in `fit`.
        return inputs


# ----------------------------------------------------------------------------- data
def make_data(size: str, seed: int) -> tuple[InteractionData, dict[str, Any]]:
    """Synthetic interactions + text, and metadata written from the planted factors 4-7
    (which the text does not show). Returns the data and one extra item's metadata."""
    from multirec.datasets.synthetic import make_synthetic

    n_users, n_items, per_user, _ = SIZES[size]
    ds = make_synthetic(n_users=n_users, n_items=n_items, interactions_per_user=per_user,
                        modalities=("text",), seed=seed)
    rng = np.random.default_rng(seed)

    def meta(v: np.ndarray) -> dict[str, Any]:
        v = v + 0.3 * rng.normal(size=v.shape)
        return {"genres": [g for g, x in zip(GENRES, v[4:8]) if x > 0.3],
                "language": LANGUAGES[int(np.argmax(v[5:8]))] if v[5:8].max() > 0 else "pt",
                "year": int(1990 + 15 * np.tanh(v[4]) + 15), "minutes": round(float(np.exp(3 + v[7] / 2)), 1)}

    ids = ds.data.items.ids(np.arange(ds.data.n_items))
    table = {i: meta(ds.item_factors[k]) for k, i in enumerate(ids)}
    data = InteractionData.from_dataframe(
        ds.data.to_dataframe(), "user", "item", weight_col=None,
        item_content={"text": ds.content_table("text"), "metadata": table})
    new_item = meta(rng.normal(size=ds.item_factors.shape[1]).astype(np.float32))
    return data, new_item


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A custom metadata encoder: train, save, load.")
    ap.add_argument("--small", action="store_true", help="tiny run (tests, a first look)")
    ap.add_argument("--epochs", type=int, help="training epochs (default by size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; "
                    "1 is fastest for tiny models on a busy machine)")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        return run(args, out)


def run(args: argparse.Namespace, out: Path) -> int:
    t0 = time.perf_counter()
    size = "small" if args.small else "default"

    # 1. the encoder on its own: built by name, JSON config, vectors
    enc = get_encoder("metadata", genres=GENRES, languages=LANGUAGES)
    print(f"registered encoder: {enc.to_config()}")
    example = [{"year": 1994, "minutes": 42, "language": "en", "genres": ["jazz", "drama"]},
               {"year": 2021, "language": "pt"}]
    print(f"two items → {tuple(enc.encode(example).shape)}:\n{enc.encode(example).numpy().round(2)}")

    # 2. train with it next to text and LightFM
    data, new_item = make_data(size, args.seed)
    print(f"\ndata: {data}")
    model = MultimodalRecommender(
        encoders={"text": "text-hash", "metadata": enc}, dim=32,
        epochs=args.epochs or SIZES[size][3], lr=3e-3, batch_size=32, seed=args.seed,
        cf={"no_components": 16, "epochs": 20, "num_threads": 1, "seed": args.seed},
        show_progress=False,
    ).fit(data)
    users = list(data.users)[:3]
    ids, scores = model.recommend(users, n=5)
    for u, row, p in zip(users, ids, scores):
        print(f"  {u}: " + ", ".join(f"{i} ({s:.3f})" for i, s in zip(row, p)))

    # 3. save, load by name, compare; then a new item from metadata only in both models
    model.save_pretrained(out / "model", overwrite=True)  # replaces only a previous save
    saved = read_config(out / "model")
    print(f"\nsaved to {out / 'model'}; encoder configs: {_find_encoders(saved)}")
    loaded = MultimodalRecommender.from_pretrained(out / "model")
    ids2, scores2 = loaded.recommend(users, n=5)
    same_warm = bool(np.array_equal(ids, ids2) and np.allclose(scores, scores2, rtol=0, atol=1e-6))
    print(f"loaded model: identical recommendations: {same_warm} "
          f"(max |Δp| {float(np.max(np.abs(scores - scores2))):.1e})")
    for m in (model, loaded):
        m.add_items({"metadata": {"new_item": new_item}})
    cold, cold2 = model.score(users, ["new_item"] * 3), loaded.score(users, ["new_item"] * 3)
    same_cold = bool(np.allclose(cold, cold2, rtol=0, atol=1e-6))
    ranking, _ = loaded.recommend(users[0], n=len(loaded.item_map_))
    print(f"new_item {new_item} (metadata only): p = {', '.join(f'{p:.3f}' for p in cold)} in "
          f"the trained model, {', '.join(f'{p:.3f}' for p in cold2)} in the loaded one "
          f"(identical: {same_cold}); "
          f"rank #{int(np.flatnonzero(ranking == 'new_item')[0]) + 1} of {len(ranking)} for {users[0]}")

    results = {"users": users, "before": ids.tolist(), "after": ids2.tolist(),
               "identical": same_warm and same_cold, "encoder": enc.to_config()}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nRECOMMENDED {users[0]}: {' '.join(map(str, ids[0]))}")
    print(f"IDENTICAL {same_warm and same_cold}")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0 if same_warm and same_cold else 1


def _find_encoders(config: Any) -> Any:
    """The `encoders` entry of a saved config.json (wherever the format nests it)."""
    if isinstance(config, dict):
        if "encoders" in config:
            return config["encoders"]
        for value in config.values():
            found = _find_encoders(value)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    raise SystemExit(main())
