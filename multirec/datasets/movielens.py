"""MovieLens 100K / 1M: official GroupLens files → InteractionData with item text.

    >>> ml = load("ml-100k")                      # downloads once (checksummed) to a cache dir
    >>> ml = load("ml-100k", data_dir="path/to/ml-100k", min_rating=4)

`data_dir` is resolved as: the argument, then $MULTIREC_ML100K / $MULTIREC_ML1M, then the cache
($MULTIREC_DATA or ~/.cache/multirec/datasets) where the official zip is downloaded and its
MD5 verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data import InteractionData
from ..errors import DatasetError

__all__ = ["MovieLens", "load"]

# GroupLens' published MD5 sums of the official zips.
_SETS = {
    "ml-100k": ("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                "0e33842e24a9c977be4e0107933c0723", "MULTIREC_ML100K", ("u.data", "u.item", "u.user")),
    "ml-1m": ("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
              "c4d9eecfca2ab87c1945afe126590906", "MULTIREC_ML1M",
              ("ratings.dat", "movies.dat", "users.dat")),
}
_GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                "Romance", "Sci-Fi", "Thriller", "War", "Western"]


@dataclass
class MovieLens:
    """Loaded MovieLens set: interactions (+ text content and side features) and raw tables."""

    data: InteractionData
    items: pd.DataFrame
    users: pd.DataFrame
    path: Path


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("MULTIREC_DATA", Path.home() / ".cache" / "multirec" / "datasets"))


def _download(name: str, root: Path) -> Path:
    url, md5, _, files = _SETS[name]
    target = root / name
    if all((target / f).is_file() for f in files):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        zpath = Path(tmp) / f"{name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(zpath, "wb") as f:
                shutil.copyfileobj(resp, f)
        except OSError as exc:
            raise DatasetError(f"cannot download {url} ({exc}); download it yourself and pass "
                               f"data_dir=<folder with {', '.join(files)}>") from exc
        digest = hashlib.md5(zpath.read_bytes()).hexdigest()
        if digest != md5:
            raise DatasetError(f"checksum mismatch for {url}: got md5 {digest}, expected {md5}; "
                               "the download is corrupt, try again")
        with zipfile.ZipFile(zpath) as z:
            z.extractall(tmp)
        extracted = Path(tmp) / name
        if target.exists():
            shutil.rmtree(target)
        os.replace(extracted, target)
    return target


def _resolve(name: str, data_dir: str | os.PathLike | None, cache_dir: str | os.PathLike | None) -> Path:
    if name not in _SETS:
        raise DatasetError(f"unknown MovieLens set {name!r}; choose one of {sorted(_SETS)}")
    _, _, env, files = _SETS[name]
    if data_dir is None and os.environ.get(env):
        data_dir = os.environ[env]
    if data_dir is None:
        return _download(name, _cache_root(cache_dir))
    path = Path(data_dir)
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise DatasetError(f"{str(path)!r} lacks {missing}; expected the official {name} files {list(files)}")
    return path


def load(name: str = "ml-100k", data_dir: str | os.PathLike | None = None, *,
         min_rating: float | None = None, cache_dir: str | os.PathLike | None = None) -> MovieLens:
    """Load MovieLens; `min_rating` keeps ratings >= it as binary positives (items stay in
    the catalogue), else ratings are the weights. Item text: "Title (year). Genres: a, b"."""
    path = _resolve(name, data_dir, cache_dir)
    if name == "ml-100k":
        ratings = pd.read_csv(path / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
        items = pd.read_csv(path / "u.item", sep="|", encoding="latin-1", header=None,
                            names=["item", "title", "release", "video", "url", *_GENRES_100K])
        items["genres"] = items[_GENRES_100K].apply(
            lambda r: [g for g in _GENRES_100K if r[g] == 1], axis=1)
        users = pd.read_csv(path / "u.user", sep="|", names=["user", "age", "gender", "occupation", "zip"])
    else:
        ratings = pd.read_csv(path / "ratings.dat", sep="::", engine="python",
                              names=["user", "item", "rating", "timestamp"])
        items = pd.read_csv(path / "movies.dat", sep="::", engine="python", encoding="latin-1",
                            names=["item", "title", "genre_str"])
        items["genres"] = items["genre_str"].str.split("|")
        users = pd.read_csv(path / "users.dat", sep="::", engine="python",
                            names=["user", "gender", "age", "occupation", "zip"])
    items["year"] = pd.to_numeric(items["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    items["text"] = [f"{t}. Genres: {', '.join(g)}" for t, g in zip(items["title"], items["genres"])]
    item_features = {i: list(g) + ([f"decade:{int(y) // 10 * 10}"] if y == y else [])
                     for i, g, y in zip(items["item"], items["genres"], items["year"])}
    user_features = {u: [f"age:{int(a) // 10 * 10}", f"gender:{g}", f"occupation:{o}"]
                     for u, a, g, o in zip(users["user"], users["age"], users["gender"], users["occupation"])}
    data = InteractionData.from_arrays(
        ratings["user"].to_numpy(), ratings["item"].to_numpy(), ratings["rating"].to_numpy(float),
        timestamps=ratings["timestamp"].to_numpy(float), rating_threshold=min_rating,
        binary=min_rating is not None, user_ids=users["user"].tolist(), item_ids=items["item"].tolist(),
        item_content={"text": dict(zip(items["item"], items["text"]))},
        item_features=item_features, user_features=user_features)
    return MovieLens(data, items, users, path)
