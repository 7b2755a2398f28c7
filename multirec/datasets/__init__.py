"""Data set loaders (official files → `InteractionData` with item content) and generators.

    movielens.load("ml-100k" | "ml-1m" | "ml-20m")   text = title + genres, tags = genres (+ user tags)
    lastfm.load()                                     HetRec 2011 Last.fm: play counts, artist tags
    amazon.load("All_Beauty")                         Amazon Reviews 2023: ratings, product metadata
    mind.load("train" | "dev")                        MIND-small news clicks (+ impressions)
    synthetic.make_synthetic(...)                     small multimodal data with planted factors
    longtail.make_longtail(...)                       large long-tail data with planted clusters

Every loader takes `data_dir` (a folder with the official files), else an environment
variable, else downloads once into `cache_dir` / $MULTIREC_DATA / ~/.cache/multirec/datasets
(see `multirec.datasets.download`), and raises `multirec.errors.DatasetError` saying where to
put the files when it cannot.
"""

from . import amazon, download, lastfm, longtail, mind, movielens, synthetic
from .longtail import LongTailDataset, make_longtail
from .synthetic import SyntheticDataset, make_synthetic

__all__ = ["amazon", "download", "lastfm", "longtail", "mind", "movielens", "synthetic",
           "LongTailDataset", "make_longtail", "SyntheticDataset", "make_synthetic"]
