"""Amazon Reviews 2023 (McAuley lab): one category's ratings with product metadata.

    >>> az = load("All_Beauty", min_rating=4, k_core=5)   # downloads two .jsonl.gz files once
    >>> az.data.content["tags"][0]                         # categories + store
    >>> az.image_urls["B01CUPMQZE"]                        # image URL (images are not downloaded)

Files (gzipped JSON lines): `<Category>.jsonl.gz` reviews (user_id, parent_asin, rating
1–5, timestamp in ms, …) and `meta_<Category>.jsonl.gz` products (parent_asin, title,
description [str], features [str], categories [str], images [{"thumb", "large",
"hi_res", …}], store, …), from
https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw/review_categories/<Category>.jsonl.gz
and …/raw/meta_categories/meta_<Category>.jsonl.gz.

The folder is resolved as: `data_dir`, then $MULTIREC_AMAZON2023, then `<cache>/amazon-2023`
(`cache_dir`, $MULTIREC_DATA or ~/.cache/multirec/datasets). No checksums are published
for these files, so a download cannot be verified against anything: its size and SHA-256
are recorded at the first download (trust on first use) and `verify=True` checks a cached
copy against that record. The data is the McAuley lab's, for research use.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data import InteractionData
from ..errors import DataError, DatasetError
from .checks import check_bool, check_int, check_number
from .download import Source, locate
from .tables import PARSE_ERRORS, interactions, k_core_mask

__all__ = ["Amazon", "load", "sources", "BASE_URL", "DEFAULT_CATEGORY"]

BASE_URL = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw"
_FOLDER, _ENV = "amazon-2023", "MULTIREC_AMAZON2023"
DEFAULT_CATEGORY = "All_Beauty"
_IMAGE_SIZES = ("large", "hi_res", "thumb")


@dataclass
class Amazon:
    """A loaded Amazon Reviews 2023 category.

    Attributes:
        data: ratings (1–5 weights, or binary with `min_rating`) with timestamps in Unix
            seconds, item content {"text": str, "tags": [str]} (None for products without
            metadata) and item features "category:<c>", "store:<s>".
        items: one row per product with metadata: item, title, store, categories (list),
            text, image_url (None if none).
        image_urls: {parent_asin: URL of the first image} ("large", else "hi_res", else
            "thumb"); nothing is downloaded.
        path: the folder the files were read from.
    """

    data: InteractionData
    items: pd.DataFrame
    image_urls: dict[str, str]
    path: Path

    def __repr__(self) -> str:
        return f"Amazon({self.data!r}, path={str(self.path)!r})"


def sources(category: str) -> tuple[Source, Source]:
    """The review and metadata files of `category` (e.g. "All_Beauty", "Video_Games")."""
    if not isinstance(category, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", category):
        raise DatasetError(f"category must be an Amazon Reviews 2023 category name such as "
                           f"'All_Beauty' or 'Video_Games', got {category!r}")
    reviews = f"{category}.jsonl.gz"
    meta = f"meta_{category}.jsonl.gz"
    return (Source(_FOLDER, f"{BASE_URL}/review_categories/{reviews}", (reviews,), _ENV, archive=False),
            Source(_FOLDER, f"{BASE_URL}/meta_categories/{meta}", (meta,), _ENV, archive=False))


def _lines(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"line {n} of {path.name} is not JSON ({exc})") from exc


def _read_reviews(path: Path) -> pd.DataFrame:
    users, items, ratings, times = [], [], [], []
    for row in _lines(path):
        users.append(row["user_id"])
        items.append(row["parent_asin"])
        ratings.append(float(row["rating"]))
        times.append(float(row["timestamp"]) / 1000.0)  # ms → s
    return pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": times})


def _text_list(value) -> list[str]:
    if isinstance(value, str):
        value = [value]
    return [str(x).strip() for x in value or [] if str(x).strip()]


def _image(images) -> str | None:
    for image in images or []:
        if isinstance(image, dict):
            for size in _IMAGE_SIZES:
                if image.get(size):
                    return str(image[size])
    return None


def _read_meta(path: Path) -> pd.DataFrame:
    rows = []
    for row in _lines(path):
        title = str(row.get("title") or "").strip()
        body = " ".join(_text_list(row.get("features")) + _text_list(row.get("description")))
        store = str(row.get("store") or "").strip()
        rows.append({"item": row["parent_asin"], "title": title, "store": store,
                     "categories": _text_list(row.get("categories")),
                     "text": ". ".join(x for x in (title, body) if x) or None,
                     "image_url": _image(row.get("images"))})
    columns = ["item", "title", "store", "categories", "text", "image_url"]
    return pd.DataFrame(rows, columns=columns, dtype=object).drop_duplicates("item", keep="first")


def load(category: str | None = None, data_dir: str | os.PathLike | None = None, *,
         min_rating: float | None = None, k_core: int | None = None, verify: bool = False,
         cache_dir: str | os.PathLike | None = None) -> Amazon:
    """Load one Amazon Reviews 2023 category (reviews + product metadata).

    Args:
        category: the file name stem, e.g. "All_Beauty", "Video_Games", "Books"; None:
            "All_Beauty" (one of the smallest: ~700k ratings, ~112k products).
        data_dir: folder with `<category>.jsonl.gz` and `meta_<category>.jsonl.gz`;
            default $MULTIREC_AMAZON2023, else the download cache.
        min_rating: keep only ratings >= it, as binary positives (users with none left are
            dropped; products stay in the catalogue); None keeps the ratings as weights.
        k_core: keep the k-core: repeatedly drop users and products with fewer than k
            (kept) ratings; the catalogue is then the core's products only. None: no
            filter, and every product in the metadata is an item (cold if never rated).
        verify: check the files against the sizes and hashes recorded at download.
        cache_dir: where to download to (default $MULTIREC_DATA or ~/.cache/multirec/datasets).

    A user's repeated ratings of one product keep the latest. Item text is
    "<title>. <features> <description>" (lists joined by spaces); tags are the categories
    followed by the store. Products rated but absent from the metadata have no content.
    """
    category = DEFAULT_CATEGORY if category is None else category
    min_rating = check_number("min_rating", min_rating, none_ok=True)
    k = check_int("k_core", k_core, 1, none_ok=True)
    verify = check_bool("verify", verify)
    review_src, meta_src = sources(category)
    path = locate(review_src, data_dir, cache_dir, verify=verify)
    locate(meta_src, data_dir, cache_dir, verify=verify)  # the same folder
    try:
        reviews = _read_reviews(path / review_src.files[0])
        meta = _read_meta(path / meta_src.files[0])
    except (*PARSE_ERRORS, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read the Amazon {category} files in {str(path)!r} "
                           f"({type(exc).__name__}: {exc}); they do not have the official layout — "
                           f"re-download {review_src.url} and {meta_src.url}") from exc
    reviews = reviews.sort_values("timestamp", kind="stable")
    reviews = reviews.drop_duplicates(["user", "item"], keep="last")  # a re-rating replaces
    if min_rating is not None:
        reviews = reviews[reviews["rating"] >= min_rating]
        if reviews.empty:
            raise DataError(f"no rating is >= min_rating={min_rating:g}; lower it")
    catalogue = list(dict.fromkeys([*meta["item"], *reviews["item"]]))
    if k is not None:
        users, items = pd.factorize(reviews["user"])[0], pd.factorize(reviews["item"])[0]
        reviews = reviews[k_core_mask(users, items, k)]
        if reviews.empty:
            raise DataError(f"the {k}-core of {category} is empty; use a smaller k_core")
        catalogue = list(dict.fromkeys(reviews["item"]))
        meta = meta[meta["item"].isin(set(catalogue))]

    with_text = meta[meta["text"].notna()]
    data = interactions(
        reviews, weight="rating", time="timestamp", binary=min_rating is not None, item_ids=catalogue,
        item_content={"text": dict(zip(with_text["item"], with_text["text"])),
                      "tags": {i: c + ([s] if s else []) or None
                               for i, c, s in zip(meta["item"], meta["categories"], meta["store"])}},
        item_features={i: [f"category:{x}" for x in c] + ([f"store:{s}"] if s else [])
                       for i, c, s in zip(meta["item"], meta["categories"], meta["store"])})
    image_urls = {i: u for i, u in zip(meta["item"], meta["image_url"]) if isinstance(u, str)}
    return Amazon(data, meta.reset_index(drop=True), image_urls, path)

