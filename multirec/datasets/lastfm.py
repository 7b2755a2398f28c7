"""Last.fm HetRec 2011 (hetrec2011-lastfm-2k): user–artist play counts with artist tags.

    >>> fm = load()                                  # downloads the GroupLens zip once
    >>> fm = load(data_dir="path/to/hetrec2011-lastfm-2k", min_plays=10, max_tags=20)
    >>> fm.data.content["tags"][0][:3]               # tags applied to the artist, most used first

Files (tab-separated, each with a header row): user_artists.dat (userID, artistID, weight =
play count), artists.dat (id, name, url, pictureURL; UTF-8), tags.dat (tagID, tagValue;
latin-1), user_taggedartists.dat (userID, artistID, tagID, day, month, year).

The folder is resolved as: `data_dir`, then $MULTIREC_LASTFM, then
`<cache>/hetrec2011-lastfm-2k` (`cache_dir`, $MULTIREC_DATA or ~/.cache/multirec/datasets),
downloaded once from GroupLens. GroupLens publishes no hash of the zip, so the four
extracted files are checked against SHA-256 sums recorded here; a download is always
checked, a local folder only with `verify=True` (so hand-made or trimmed copies load).
The data is GroupLens' (from Last.fm), licensed for research use.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data import InteractionData
from ..errors import DatasetError
from .checks import check_bool, check_int, check_number
from .download import Source, locate
from .tables import interactions, parsing, ranked_tags

__all__ = ["LastFM", "load", "SOURCE"]

SOURCE = Source(
    name="hetrec2011-lastfm-2k",
    url="https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
    files=("user_artists.dat", "artists.dat", "tags.dat", "user_taggedartists.dat"),
    env="MULTIREC_LASTFM",
    file_hashes={
        "user_artists.dat": "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416",
        "artists.dat": "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648",
        "tags.dat": "c815d7216101fd0ba9b9c59fa2a011998d2fd076e0064d281ec4153d95ae8095",
        "user_taggedartists.dat": "c4a9ffae9ab47a9f9b2f0678ab1f7e5c1db4ca818837d8cddd1f5699c5bbf048",
    },
    algorithm="sha256",
)


@dataclass
class LastFM:
    """A loaded Last.fm HetRec 2011 set.

    Attributes:
        data: interactions (binary, or play counts with `binary=False`), item content
            {"text": str, "tags": [str]} (None where missing) and item features
            "tag:<tag>" (the same tags, for LightFM-style hybrids).
        artists: one row per item: item, name (None if not in artists.dat), url,
            picture_url, tags (list).
        taggings: one row per tag application: user, item, tag (str), day, month, year.
        image_urls: {artist id: pictureURL} for the artists that have one (not downloaded).
        path: the folder the files were read from.
    """

    data: InteractionData
    artists: pd.DataFrame
    taggings: pd.DataFrame
    image_urls: dict[int, str]
    path: Path

    def __repr__(self) -> str:
        return f"LastFM({self.data!r}, path={str(self.path)!r})"


def _table(path: Path, names: list[str], encoding: str) -> pd.DataFrame:
    """A HetRec .dat file: tab-separated, one header row, no quoting, strings kept as read."""
    return pd.read_csv(path, sep="\t", header=0, names=names, encoding=encoding, dtype=str,
                       quoting=csv.QUOTE_NONE, keep_default_na=False, encoding_errors="strict")


def _read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with parsing(SOURCE.name, path, SOURCE.url):
        plays = _table(path / "user_artists.dat", ["user", "item", "weight"], "utf-8")
        artists = _table(path / "artists.dat", ["item", "name", "url", "picture_url"], "utf-8")
        tags = _table(path / "tags.dat", ["tag_id", "tag"], "latin-1")
        taggings = _table(path / "user_taggedartists.dat",
                          ["user", "item", "tag_id", "day", "month", "year"], "utf-8")
        for frame, cols in ((plays, ["user", "item", "weight"]), (artists, ["item"]),
                            (tags, ["tag_id"]),
                            (taggings, ["user", "item", "tag_id", "day", "month", "year"])):
            for col in cols:
                frame[col] = pd.to_numeric(frame[col], errors="raise")
        tag_names = dict(zip(tags["tag_id"], tags["tag"].str.strip()))
        taggings["tag"] = taggings["tag_id"].map(tag_names)
        taggings = taggings[taggings["tag"].notna() & (taggings["tag"] != "")]  # unknown tag IDs
        return plays, artists, taggings.drop(columns="tag_id").reset_index(drop=True)


def load(name: str | None = None, data_dir: str | os.PathLike | None = None, *, binary: bool = True,
         min_plays: float | None = None, max_tags: int | None = None, text_tags: int = 10,
         verify: bool = False, cache_dir: str | os.PathLike | None = None) -> LastFM:
    """Load Last.fm HetRec 2011 (1 892 users, 17 632 artists, 92 834 user–artist pairs).

    Args:
        name: None or "hetrec2011-lastfm-2k" (the only set; the argument keeps the loaders'
            `load(name, data_dir)` shape).
        data_dir: folder with the four files; default $MULTIREC_LASTFM, else the cache.
        binary: implicit feedback (every kept pair weighs 1); False keeps the play counts.
        min_plays: keep only pairs with at least this many plays (all users and artists stay
            in the catalogue); None keeps all.
        max_tags: keep at most this many tags per artist (the most applied); None keeps all.
        text_tags: how many of those tags the text lists after the name.
        verify: check a local folder's files against the official SHA-256 sums too.
        cache_dir: where to download to (default $MULTIREC_DATA or ~/.cache/multirec/datasets).

    Item content: `tags` lists the distinct tags any user applied to the artist
    (user_taggedartists.dat), most applications first, ties by tag; `text` is
    "<name>. Tags: <first text_tags tags, comma-separated>" (just the name if untagged).
    Artists that have plays or tags but no row in artists.dat are items with text None;
    artists without any tag have tags None. Item features are "tag:<tag>" for the same tags.
    """
    if name not in (None, SOURCE.name):
        raise DatasetError(f"unknown Last.fm set {name!r}; the only one is {SOURCE.name!r} (or None)")
    binary = check_bool("binary", binary)
    min_plays = check_number("min_plays", min_plays, none_ok=True)
    max_tags = check_int("max_tags", max_tags, 1, none_ok=True)
    text_tags = check_int("text_tags", text_tags, 0)
    verify = check_bool("verify", verify)
    path = locate(SOURCE, data_dir, cache_dir, verify=verify)
    plays, artists, taggings = _read(path)

    item_tags = ranked_tags(taggings["item"], taggings["tag"], max_tags)
    catalogue = list(dict.fromkeys([*artists["item"], *plays["item"], *item_tags]))
    names = dict(zip(artists["item"], artists["name"].str.strip()))
    text = {}
    for item in catalogue:
        name, top = names.get(item), item_tags.get(item, [])[:text_tags]
        if name:
            text[item] = f"{name}. Tags: {', '.join(top)}" if top else name
    data = interactions(
        plays, weight="weight", min_weight=min_plays, binary=binary,
        user_ids=list(dict.fromkeys(plays["user"])), item_ids=catalogue,
        item_content={"text": text, "tags": item_tags},
        item_features={i: [f"tag:{t}" for t in tags] for i, tags in item_tags.items()})

    table = pd.DataFrame({"item": catalogue})
    table = table.merge(artists, on="item", how="left")
    table["name"] = table["name"].astype(object).where(table["name"].notna(), None)
    table["tags"] = [item_tags.get(i, []) for i in table["item"]]
    image_urls = {int(i): u for i, u in zip(artists["item"], artists["picture_url"]) if u}
    return LastFM(data, table, taggings, image_urls, path)
