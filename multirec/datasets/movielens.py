"""MovieLens 100K / 1M / 20M: the official GroupLens files → `InteractionData` with item text and tags.

    >>> ml = load("ml-100k")                                  # downloads once to a cache dir
    >>> ml = load("ml-100k", data_dir="path/to/ml-100k", min_rating=4)
    >>> ml.data.content["text"][0]
    "Toy Story (1995). Genres: Animation, Children's, Comedy"

The folder is resolved as: the `data_dir` argument, then $MULTIREC_ML100K / $MULTIREC_ML1M
/ $MULTIREC_ML20M (for the respective set), then a cache folder (`cache_dir`, $MULTIREC_DATA or
~/.cache/multirec/datasets) into which the official zip is downloaded once, its MD5 checked
and its contents extracted atomically. MovieLens is GroupLens' data, licensed for research
use; the loader never copies it anywhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import InteractionData
from ..errors import DatasetError
from .checks import check_int, check_number
from .download import Source, locate
from .tables import interactions, parsing, ranked_tags

__all__ = ["MovieLens", "load", "SETS"]


@dataclass(frozen=True)
class _Set:
    url: str
    md5: str  # GroupLens' published MD5 of the zip (the .md5 file next to it on the site)
    env: str
    files: tuple[str, ...]


# URLs and MD5 sums as GroupLens publishes them on files.grouplens.org/datasets/movielens/.
SETS: dict[str, _Set] = {
    "ml-100k": _Set("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                    "0e33842e24a9c977be4e0107933c0723", "MULTIREC_ML100K", ("u.data", "u.item", "u.user")),
    "ml-1m": _Set("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                  "c4d9eecfca2ab87c1945afe126590906", "MULTIREC_ML1M",
                  ("ratings.dat", "movies.dat", "users.dat")),
    "ml-20m": _Set("https://files.grouplens.org/datasets/movielens/ml-20m.zip",
                   "cd245b17a1ae2cc31bb14903e1204af3", "MULTIREC_ML20M",
                   ("ratings.csv", "movies.csv", "tags.csv")),  # genome-*.csv are optional
}

_GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                "Romance", "Sci-Fi", "Thriller", "War", "Western"]
# ml-1m README: occupation codes
_OCCUPATIONS_1M = ["other", "academic/educator", "artist", "clerical/admin", "college/grad student",
                   "customer service", "doctor/health care", "executive/managerial", "farmer",
                   "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
                   "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
                   "unemployed", "writer"]
# ml-1m's age groups, used for both sets so the features mean the same thing
_AGE_EDGES = [18, 25, 35, 45, 50, 56]
_AGE_NAMES = ["under-18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]


@dataclass
class MovieLens:
    """A loaded MovieLens set.

    Attributes:
        data: interactions (rating weights, or binary with `min_rating`) with timestamps,
            item content {"text": str, "tags": [str]}, item features (genres, decade) and
            user features (age group, gender, occupation; none for ml-20m).
        items: one row per movie: item, title, genres (list), tags (list), year, text (+ the
            raw columns).
        users: one row per user: user, age, age_group, gender, occupation, zip (ml-20m: user).
        path: the folder the files were read from.
    """

    data: InteractionData
    items: pd.DataFrame
    users: pd.DataFrame
    path: Path

    def __repr__(self) -> str:
        return f"MovieLens({self.data!r}, path={str(self.path)!r})"


# ---------------------------------------------------------------------- locating the files
def _source(name: str) -> Source:
    spec = SETS[name]
    return Source(name, spec.url, spec.files, spec.env, archive_hash=spec.md5, algorithm="md5")


def _resolve(name: str, data_dir: str | os.PathLike | None,
             cache_dir: str | os.PathLike | None) -> Path:
    if name not in SETS:
        raise DatasetError(f"unknown MovieLens set {name!r}; choose one of {sorted(SETS)}")
    return locate(_source(name), data_dir, cache_dir)


# ---------------------------------------------------------------------- reading
def _read_100k(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    ratings = pd.read_csv(path / "u.data", sep="\t", header=None,
                          names=["user", "item", "rating", "timestamp"])
    items = pd.read_csv(path / "u.item", sep="|", encoding="latin-1", header=None,
                        names=["item", "title", "release_date", "video_release_date", "imdb_url",
                               *_GENRES_100K])
    flags = items[_GENRES_100K].to_numpy() == 1
    items["genres"] = [[g for g, on in zip(_GENRES_100K, row) if on] for row in flags]
    users = pd.read_csv(path / "u.user", sep="|", encoding="latin-1", header=None,
                        names=["user", "age", "gender", "occupation", "zip"])
    release = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce")
    return ratings, items, users, release.dt.year


def _read_1m(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    # "u::i::r::t": split on ':' with the fast parser and keep every other column
    ratings = pd.read_csv(path / "ratings.dat", sep=":", header=None, usecols=[0, 2, 4, 6],
                          names=["user", "_a", "item", "_b", "rating", "_c", "timestamp"])
    items = pd.read_csv(path / "movies.dat", sep="::", engine="python", encoding="latin-1",
                        header=None, names=["item", "title", "genre_str"])
    items["genres"] = items["genre_str"].fillna("").str.split("|").map(lambda g: [x for x in g if x])
    users = pd.read_csv(path / "users.dat", sep="::", engine="python", encoding="latin-1",
                        header=None, names=["user", "gender", "age", "occupation", "zip"])
    users["occupation"] = [(_OCCUPATIONS_1M[o] if 0 <= o < len(_OCCUPATIONS_1M) else f"code-{o}")
                           for o in users["occupation"]]
    return ratings, items, users, pd.Series(np.nan, index=items.index)


def _read_20m(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    ratings = pd.read_csv(path / "ratings.csv", header=0, names=["user", "item", "rating", "timestamp"])
    items = pd.read_csv(path / "movies.csv", header=0, names=["item", "title", "genre_str"],
                        encoding="utf-8", keep_default_na=False)
    items["genres"] = [[x for x in str(g).split("|") if x and x != "(no genres listed)"]
                       for g in items["genre_str"]]
    users = pd.DataFrame({"user": pd.unique(ratings["user"])})  # ml-20m has no user file
    return ratings, items, users, pd.Series(np.nan, index=items.index)


def _user_tags(path: Path) -> dict[int, list[str]]:
    """ml-20m tags.csv: {movie: tags lower-cased, most often applied first (ties by name)}."""
    tags = pd.read_csv(path / "tags.csv", header=0, names=["user", "item", "tag", "timestamp"],
                       encoding="utf-8", keep_default_na=False, dtype={"tag": str})
    tags["tag"] = tags["tag"].str.strip().str.lower()
    tags = tags[tags["tag"] != ""]
    return ranked_tags(pd.to_numeric(tags["item"]), tags["tag"])


def _genome_tags(path: Path, top: int) -> dict[int, list[str]]:
    """ml-20m tag genome: {movie: its `top` genome tags by relevance}; {} without the files."""
    if top <= 0 or not (path / "genome-scores.csv").is_file() or not (path / "genome-tags.csv").is_file():
        return {}
    names = pd.read_csv(path / "genome-tags.csv", header=0, names=["tag_id", "tag"])
    scores = pd.read_csv(path / "genome-scores.csv", header=0, names=["item", "tag_id", "relevance"])
    scores = scores.sort_values(["item", "relevance"], ascending=[True, False])
    best = scores.groupby("item").head(top).merge(names, on="tag_id", how="left", sort=False)
    return {int(i): list(g) for i, g in best.groupby("item", sort=False)["tag"]}


_READERS = {"ml-100k": _read_100k, "ml-1m": _read_1m, "ml-20m": _read_20m}


def _read(name: str, path: Path, genome_tags: int):
    with parsing(name, path, SETS[name].url):
        ratings, items, users, release_year = _READERS[name](path)
        for col in ("user", "item", "rating", "timestamp"):
            ratings[col] = pd.to_numeric(ratings[col])
        items["item"] = pd.to_numeric(items["item"])
        users["user"] = pd.to_numeric(users["user"])
        if "age" in users:
            users["age"] = pd.to_numeric(users["age"])
        tags = [list(g) for g in items["genres"]]
        if name == "ml-20m":
            extra = [_user_tags(path), _genome_tags(path, genome_tags)]
            tags = [list(dict.fromkeys(t + [x for e in extra for x in e.get(int(i), [])]))
                    for i, t in zip(items["item"], tags)]
        items["tags"] = tags
        return ratings, items, users, release_year


def load(name: str = "ml-100k", data_dir: str | os.PathLike | None = None, *,
         min_rating: float | None = None, cache_dir: str | os.PathLike | None = None,
         genome_tags: int = 0) -> MovieLens:
    """Load MovieLens 100K ("ml-100k"), 1M ("ml-1m") or 20M ("ml-20m").

    Args:
        data_dir: folder with the official files; default $MULTIREC_ML100K / $MULTIREC_ML1M /
            $MULTIREC_ML20M, else the download cache.
        min_rating: keep only ratings >= it, as binary positives (every user and item stays
            in the catalogue); None keeps all ratings as weights (1–5).
        cache_dir: where to download to (default $MULTIREC_DATA or ~/.cache/multirec/datasets).
        genome_tags: ml-20m only: append each movie's this many most relevant tag-genome tags
            (genome-scores.csv, if present) to its `tags`; 0 adds none.

    Item content: `text` is "Title (year). Genres: a, b"; `tags` is the list of genres, for
    ml-20m followed by the users' tags (tags.csv, lower-cased, most often applied first) and
    the genome tags (duplicates dropped). Item features are "genre:<name>" and "decade:<1990>";
    user features (100K/1M; ml-20m has no user data) are "age:<group>", "gender:<M/F>",
    "occupation:<name>".
    """
    min_rating = check_number("min_rating", min_rating, none_ok=True)
    genome_tags = check_int("genome_tags", genome_tags, 0)
    path = _resolve(name, data_dir, cache_dir)
    ratings, items, users, release_year = _read(name, path, genome_tags)

    title_year = pd.to_numeric(items["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    items["year"] = title_year.fillna(release_year).astype("Int64")
    items["text"] = [f"{str(t).strip()}. Genres: {', '.join(g)}" if g else str(t).strip()
                     for t, g in zip(items["title"], items["genres"])]
    user_features = None
    if "age" in users:
        users["age_group"] = [_AGE_NAMES[np.searchsorted(_AGE_EDGES, a, side="right")]
                              for a in users["age"]]
        user_features = {u: [f"age:{a}", f"gender:{g}", f"occupation:{o}"]
                         for u, a, g, o in zip(users["user"], users["age_group"], users["gender"],
                                               users["occupation"])}

    item_features = {
        i: [f"genre:{g}" for g in genres] + ([] if pd.isna(y) else [f"decade:{int(y) // 10 * 10}"])
        for i, genres, y in zip(items["item"], items["genres"], items["year"])}
    data = interactions(
        ratings, weight="rating", time="timestamp", min_weight=min_rating,
        binary=min_rating is not None, user_ids=users["user"].tolist(), item_ids=items["item"].tolist(),
        item_content={"text": dict(zip(items["item"], items["text"])),
                      "tags": dict(zip(items["item"], items["tags"]))},
        item_features=item_features, user_features=user_features)
    return MovieLens(data, items, users, path)
