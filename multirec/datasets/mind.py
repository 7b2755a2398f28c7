"""MIND-small (Microsoft News Dataset): news clicks with titles, abstracts and categories.

    >>> mind = load("train")                          # downloads MINDsmall_train.zip once
    >>> mind = load("dev", data_dir="path/to/MINDsmall_dev", impressions=True)
    >>> mind.impressions.head()                       # shown news with clicked 1/0 (MIND protocol)

Files (tab-separated, no header): behaviors.tsv (impression ID, user ID, time
"11/15/2019 8:55:22 AM", history = space-separated clicked news IDs, impressions
"N123-1 N456-0" = shown news with click label) and news.tsv (news ID, category,
subcategory, title, abstract, URL, title entities, abstract entities).

The folder is resolved as: `data_dir`, then $MULTIREC_MIND_TRAIN / $MULTIREC_MIND_DEV, then
`<cache>/MINDsmall_<split>` (`cache_dir`, $MULTIREC_DATA or ~/.cache/multirec/datasets),
downloaded once from Microsoft's blob storage. Microsoft publishes no checksums, so the
download is not verified against anything; the size and SHA-256 of its files are recorded
then (trust on first use) and `verify=True` checks a cached copy against that record.
MIND is licensed by Microsoft for non-commercial research (see msnews.github.io).
"""

from __future__ import annotations

import csv
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import InteractionData
from ..errors import DatasetError
from .checks import check_bool
from .download import Source, locate
from .tables import interactions, parsing

__all__ = ["MIND", "load", "SOURCES"]

_URL = "https://mind201910small.blob.core.windows.net/release/MINDsmall_{}.zip"
SOURCES: dict[str, Source] = {
    split: Source(f"MINDsmall_{split}", _URL.format(split), ("behaviors.tsv", "news.tsv"),
                  f"MULTIREC_MIND_{split.upper()}")
    for split in ("train", "dev")
}
_NEWS_COLUMNS = ["item", "category", "subcategory", "title", "abstract", "url", "title_entities",
                 "abstract_entities"]


@dataclass
class MIND:
    """A loaded MIND-small split.

    Attributes:
        data: binary clicks (history clicks and clicked impressions), timestamps in Unix
            seconds, item content {"text": title + abstract, "tags": [category,
            subcategory]} and item features "category:<c>", "subcategory:<s>".
        news: one row per news.tsv line (item, category, subcategory, title, abstract, url,
            entity columns as the raw JSON strings).
        behaviors: one row per impression log line (impression, user, time, history,
            impressions as the raw strings; time in Unix seconds).
        impressions: with `impressions=True`, one row per shown news: impression, user,
            time, item, clicked (bool) — the candidates of the MIND ranking protocol;
            else None.
        path: the folder the files were read from.
    """

    data: InteractionData
    news: pd.DataFrame
    behaviors: pd.DataFrame
    impressions: pd.DataFrame | None
    path: Path

    def __repr__(self) -> str:
        return f"MIND({self.data!r}, path={str(self.path)!r})"


def _tsv(path: Path, names: list[str]) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=names, dtype=str, quoting=csv.QUOTE_NONE,
                       keep_default_na=False, encoding="utf-8")


def _explode(behaviors: pd.DataFrame, column: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per space-separated token of `column` (impression, user, time), and the tokens.

    Plain str.split: pandas' .str methods take several times longer on millions of tokens."""
    lists = [cell.split() for cell in behaviors[column].tolist()]
    rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
    frame = behaviors[["impression", "user", "time"]].iloc[rows].reset_index(drop=True)
    return frame, list(itertools.chain.from_iterable(lists))


def _read(path: Path, url: str):
    with parsing("MIND", path, url):
        news = _tsv(path / "news.tsv", _NEWS_COLUMNS)
        behaviors = _tsv(path / "behaviors.tsv", ["impression", "user", "time", "history", "impressions"])
        behaviors["time"] = pd.to_datetime(behaviors["time"], format="%m/%d/%Y %I:%M:%S %p")
        behaviors["time"] = behaviors["time"].astype("datetime64[s]").astype(np.int64).astype(float)
        behaviors["impression"] = pd.to_numeric(behaviors["impression"])
        shown, tokens = _explode(behaviors, "impressions")
        labels = [t[-2:] for t in tokens]
        bad = next((t for t, lab in zip(tokens, labels) if lab not in ("-0", "-1")), None)
        if bad is not None:
            raise ValueError(f"impression {bad!r} is not '<news ID>-<0 or 1>'")
        shown["item"] = [t[:-2] for t in tokens]
        shown["clicked"] = np.asarray([lab == "-1" for lab in labels], dtype=bool)
        history, clicked = _explode(behaviors, "history")
        history["item"] = clicked
    return news, behaviors, history, shown


def load(split: str | None = "train", data_dir: str | os.PathLike | None = None, *, history: bool = True,
         impressions: bool = False, verify: bool = False,
         cache_dir: str | os.PathLike | None = None) -> MIND:
    """Load the MIND-small "train" (None: "train") or "dev" split.

    Args:
        data_dir: the unzipped split folder (behaviors.tsv, news.tsv); default the env
            variable $MULTIREC_MIND_TRAIN / $MULTIREC_MIND_DEV, else the download cache.
        history: include the clicks listed in the users' histories. They have no time of
            their own: each gets the time of the user's first impression line listing it,
            minus one second (they happened before it). False: only clicked impressions.
        impressions: also return every shown news with its click label (`.impressions`).
        verify: check the files against the sizes and hashes recorded at download.
        cache_dir: where to download to (default $MULTIREC_DATA or ~/.cache/multirec/datasets).

    Item text is "<title>. <abstract>" (just the title without an abstract); tags are
    [category, subcategory]. Every news.tsv line is an item, clicked or not.
    """
    split = "train" if split is None else split
    if split not in SOURCES:
        raise DatasetError(f"unknown MIND split {split!r}; choose one of {sorted(SOURCES)}")
    history, with_impressions = check_bool("history", history), check_bool("impressions", impressions)
    verify = check_bool("verify", verify)
    source = SOURCES[split]
    path = locate(source, data_dir, cache_dir, verify=verify)
    news, behaviors, past, shown = _read(path, source.url)

    clicks = shown.loc[shown["clicked"], ["user", "item", "time"]]
    if history:
        clicks = pd.concat([past[["user", "item", "time"]].assign(time=past["time"] - 1.0), clicks])
    clicks = clicks.sort_values("time", kind="stable").drop_duplicates(["user", "item"])  # earliest

    titles = news["title"].str.strip()
    abstracts = news["abstract"].str.strip()
    text = np.where(abstracts != "", titles + ". " + abstracts, titles)
    data = interactions(
        clicks, time="time", user_ids=pd.unique(behaviors["user"]).tolist(),
        item_ids=news["item"].tolist(),
        item_content={"text": dict(zip(news["item"], text)),
                      "tags": {i: [c, s] for i, c, s in zip(news["item"], news["category"],
                                                          news["subcategory"])}},
        item_features={i: [f"category:{c}", f"subcategory:{s}"]
                       for i, c, s in zip(news["item"], news["category"], news["subcategory"])})
    return MIND(data, news, behaviors, shown if with_impressions else None, path)
