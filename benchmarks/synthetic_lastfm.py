"""A Last.fm HetRec 2011 look-alike, written in the official file layout, tagged by listeners.

    python benchmarks/synthetic_lastfm.py DIR [--seed 0] [--users 1892] [--artists 17632]
    python benchmarks/run.py --dataset lastfm --data-dir DIR --protocol warm cold-item

The real set (hetrec2011-lastfm-2k) cannot be downloaded here, and the long-tail proxy
(`make_longtail(1892, 17632, 49)`) misses what makes its tags special: they are applied *by
listeners* (user_taggedartists.dat), so an artist's tags mix its genre with the personal
vocabulary ("seen live", "my top 10 2009") of the people who tag it — often the very people
who listen to it, also when the artist is cold. A model that learns user–tag affinity gains
on cold artists; one that treats tags as item-only content does not. This script keeps the
long-tail plays (Zipf popularity, planted clusters, 92k pairs) and adds that tagging:

    users      35% never tag; the others tag a share of their own artists and some artists
               they did not play (from their preferred clusters), 1–4 tags per artist.
    a tag      a genre tag of the artist's cluster (p 0.55; each cluster has 3–8, shared
               vocabulary), one of the tagger's 1–5 personal tags (p 0.30), or a global tag
               drawn by a Zipf law (p 0.15).
    files      user_artists.dat (userID, artistID, weight = lognormal play counts),
               artists.dat (id, name, url, pictureURL; UTF-8, some non-ASCII names),
               tags.dat (tagID, tagValue; latin-1 with accented tags),
               user_taggedartists.dat (userID, artistID, tagID, day, month, year); IDs have
               gaps, and some tagged artists have no plays and no row in artists.dat, as in
               the real files.

At the default size it writes about 92k plays and 186k tag assignments in a few seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from multirec.datasets.longtail import make_longtail

N_TAGGING_SHARE = 0.65  # share of users who tag at all
P_GENRE, P_PERSONAL = 0.55, 0.30  # else a global (Zipf) tag
ACCENTED = ["électronique", "música latina", "français", "ñu metal", "über", "kölsch", "søul"]
NAMES_UTF8 = ["Björk", "Sigur Rós", "東京事変", "Мумий Тролль", "Motörhead"]


def _words(n: int, rng: np.random.Generator, prefix: str = "") -> list[str]:
    """`n` distinct pronounceable pseudo-words."""
    syll = ["ka", "lo", "mi", "ren", "su", "tor", "vel", "zan", "bri", "dou", "fen", "gal", "hu",
            "jin", "mor", "pax", "qui", "sol", "tam", "wy"]
    out: dict[str, None] = {}
    while len(out) < n:
        k = int(rng.integers(2, 5))
        out[prefix + "".join(rng.choice(syll, k))] = None
    return list(out)


def generate(n_users: int = 1892, n_artists: int = 17632, plays_per_user: float = 55,
             seed: int = 0) -> dict[str, list[tuple]]:
    """The four files' rows (without headers): {file name: [row tuple, ...]}."""
    rng = np.random.default_rng(seed)
    ds = make_longtail(n_users=n_users, n_items=n_artists, interactions_per_user=plays_per_user,
                       seed=seed)
    users_i, items_i = ds.data.user_index, ds.data.item_index  # (nnz,), sorted by user
    cluster = ds.item_cluster  # (n_artists,)
    n_clusters = int(cluster.max()) + 1

    # raw IDs with gaps, as in the real files (userID 2…, artistID 1…)
    user_id = np.sort(rng.choice(np.arange(2, 2 + int(n_users * 1.11) + 1), n_users, replace=False))
    n_extra = max(1, n_artists // 17)  # tagged artists that have no plays and no artists.dat row
    artist_id = np.sort(rng.choice(np.arange(1, int((n_artists + n_extra) * 1.06) + 2),
                                   n_artists + n_extra, replace=False))
    artist_id = rng.permutation(artist_id)
    extra_cluster = rng.integers(0, n_clusters, n_extra)
    all_cluster = np.concatenate([cluster, extra_cluster])  # (n_artists + n_extra,)

    weight = np.maximum(1, np.rint(rng.lognormal(5.5, 1.6, len(users_i)))).astype(np.int64)
    plays = [(int(user_id[u]), int(artist_id[i]), int(w)) for u, i, w in zip(users_i, items_i, weight)]

    names = _words(n_artists, rng)
    for j, name in enumerate(NAMES_UTF8[: min(len(NAMES_UTF8), n_artists)]):
        names[j] = name
    artists = [(int(artist_id[i]), names[i].title() if i >= len(NAMES_UTF8) else names[i],
                f"http://www.last.fm/music/{names[i].replace(' ', '+')}",
                f"http://userserve-ak.last.fm/serve/252/{int(artist_id[i])}.jpg")
               for i in range(n_artists)]

    # tag vocabulary: genre tags (shared across clusters), personal tags, global tags
    n_genre = max(8, n_clusters * 3)
    genre = _words(n_genre, rng)
    genre[: len(ACCENTED)] = ACCENTED[: min(len(ACCENTED), n_genre)]
    cluster_genres = [rng.choice(n_genre, int(rng.integers(3, 9)), replace=False)
                      for _ in range(n_clusters)]
    n_personal = rng.integers(1, 6, n_users)  # (n_users,)
    personal = [[f"{w} {int(rng.integers(1, 100))}" for w in _words(int(k), rng, "my ")]
                for k in n_personal]
    n_global = max(20, int(n_artists * 0.6))
    global_tags = _words(n_global, rng, "x")
    zipf = 1.0 / np.arange(1, n_global + 1) ** 0.9
    zipf /= zipf.sum()
    vocab: dict[str, int] = {}

    def tag_id(tag: str) -> int:
        return vocab.setdefault(tag, 1 + len(vocab) + len(vocab) // 20)  # IDs with gaps

    pref = ds.cluster_preference  # (n_users, K) θ mixed with noise
    by_cluster = [np.flatnonzero(cluster == c) for c in range(n_clusters)]  # played artists
    popularity = np.exp(ds.item_log_weight.astype(np.float64))  # within-cluster choice prob.
    by_extra = [n_artists + np.flatnonzero(extra_cluster == c) for c in range(n_clusters)]
    within = [popularity[idx] / popularity[idx].sum() for idx in by_cluster]
    starts = np.searchsorted(users_i, np.arange(n_users + 1))
    taggings: list[tuple] = []
    for u in np.flatnonzero(rng.random(n_users) < N_TAGGING_SHARE):
        own = items_i[starts[u]:starts[u + 1]]
        share = rng.uniform(0.1, 0.7)
        chosen = list(own[rng.random(len(own)) < share])
        n_other = int(rng.poisson(rng.lognormal(np.log(45), 1.0)))
        if n_other:  # artists the user did not play: preferred clusters, popular ones first
            clusters = rng.choice(n_clusters, n_other, p=pref[u] / pref[u].sum())
            chosen += [int(rng.choice(by_extra[c])) if len(by_extra[c]) and rng.random() < 0.05
                       else int(rng.choice(by_cluster[c], p=within[c])) for c in clusters]
        for i in dict.fromkeys(chosen):
            tags = set()
            for _ in range(int(rng.integers(1, 5))):
                r = rng.random()
                if r < P_GENRE:
                    tags.add(genre[int(rng.choice(cluster_genres[all_cluster[i]]))])
                elif r < P_GENRE + P_PERSONAL:
                    tags.add(personal[u][int(rng.integers(len(personal[u])))])
                else:
                    tags.add(global_tags[int(rng.choice(n_global, p=zipf))])
            day, month, year = 1, int(rng.integers(1, 13)), int(rng.integers(2005, 2012))
            taggings += [(int(user_id[u]), int(artist_id[i]), tag_id(t), day, month, year)
                         for t in sorted(tags)]
    tags_rows = sorted((i, t) for t, i in vocab.items())
    return {"user_artists.dat": plays, "artists.dat": artists, "tags.dat": tags_rows,
            "user_taggedartists.dat": taggings}


HEADERS = {"user_artists.dat": ("userID", "artistID", "weight"),
           "artists.dat": ("id", "name", "url", "pictureURL"),
           "tags.dat": ("tagID", "tagValue"),
           "user_taggedartists.dat": ("userID", "artistID", "tagID", "day", "month", "year")}
ENCODINGS = {"tags.dat": "latin-1"}  # the others are UTF-8


def write(folder: str | Path, n_users: int = 1892, n_artists: int = 17632,
          plays_per_user: float = 55, seed: int = 0) -> dict[str, int]:
    """Write the four files under `folder` (created); returns {file name: data rows}."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = generate(n_users, n_artists, plays_per_user, seed)
    for name, rows in files.items():
        lines = ["\t".join(HEADERS[name])] + ["\t".join(map(str, row)) for row in rows]
        (out / name).write_text("\n".join(lines) + "\n", encoding=ENCODINGS.get(name, "utf-8"))
    return {name: len(rows) for name, rows in files.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="where to write the four .dat files")
    ap.add_argument("--users", type=int, default=1892)
    ap.add_argument("--artists", type=int, default=17632)
    ap.add_argument("--plays-per-user", type=float, default=55)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    counts = write(args.folder, args.users, args.artists, args.plays_per_user, args.seed)
    for name, n in counts.items():
        print(f"{name}: {n} rows")
    print(Path(args.folder).resolve())


if __name__ == "__main__":
    main()
