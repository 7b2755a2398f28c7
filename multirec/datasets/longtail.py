"""Long-tail synthetic data with the statistics of real catalogues and a planted signal.

Real catalogues are nothing like a uniform random matrix: a few head items have thousands
of users, most items have one to five, users' activity varies by orders of magnitude, and
metadata is missing for a good share of the items. `make_longtail` generates that, fast
(vectorised numpy; no Python loop per interaction), from a planted cluster model:

    items      each item i belongs to a latent cluster c_i; its factor v_i is the cluster's
               factor; its popularity weight w_i follows a Zipf law over a random rank
               (w ∝ rank^-alpha, capped so no item is expected to reach more than
               `max_item_share` of the users); every item gets at least one user (drawn
               ∝ the users' liking of its cluster, counted in that user's activity, so a
               catalogue much larger than the volume pushes some users above their k_u).
    users      factors u ~ N(0, I); cluster preferences θ_u = softmax(concentration ·
               ⟨u, v_c⟩ / sqrt(d)), mixed with the clusters' overall popularity by `noise`;
               activity k_u ~ lognormal with mean `interactions_per_user` (sigma
               `activity_sigma`), at least 1.
    an event   user u picks a cluster from θ_u, then an item of that cluster ∝ w_i;
               repeated (user, item) pairs are merged and topped up again (3 rounds).
    content    with probability `tag_coverage` an item has both tags and text; otherwise
               neither (None). Each cluster has 6 core tags and 30 core words; an item
               has 1–5 tags, each a core tag of its cluster with probability 0.8 (else any
               of `n_tags`), and text "<name>: <8–15 words>", each a core word of its
               cluster with probability 0.6 (else any of 2 000 words). Tags and words are
               pronounceable pseudo-words, so content is informative but not given away.

    ds = make_longtail(n_users=10_000, n_items=20_000, seed=0)
    ds.data                       # InteractionData: content {"text", "tags"}, item_features "tag:…"
    ds.true_scores([0, 1])        # (2, n_items) log-probability of each item in one event draw
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..data import FeatureMatrix, InteractionData
from ..errors import DataError
from ..idmap import IdMap
from .checks import check_int, check_number, check_range

__all__ = ["LongTailDataset", "make_longtail"]

_SYLLABLES = ["ka", "lo", "mi", "ren", "su", "tor", "vel", "zan", "bri", "dou", "fen", "gal",
              "hu", "jin", "mor", "pax", "qui", "sol", "tam", "wy"]
_N_WORDS = 2000
_CORE_TAGS, _CORE_WORDS = 6, 30
_P_CORE_TAG, _P_CORE_WORD = 0.8, 0.6


@dataclass
class LongTailDataset:
    """Long-tail interactions, item content and the planted model that generated them.

    Attributes:
        data: `InteractionData` (binary) with timestamps, item content {"text": str,
            "tags": [str]} (None for items without metadata) and item features "tag:<tag>".
        user_factors: (n_users, n_factors) float32 user factors u.
        item_factors: (n_items, n_factors) float32 item factors (their cluster's factor).
        item_cluster: (n_items,) int64 latent cluster of each item.
        item_log_weight: (n_items,) float32 log of the within-cluster choice probability.
        cluster_preference: (n_users, n_clusters) float32 θ_u mixed with the noise.
    """

    data: InteractionData
    user_factors: np.ndarray  # (n_users, d)
    item_factors: np.ndarray  # (n_items, d)
    item_cluster: np.ndarray  # (n_items,)
    item_log_weight: np.ndarray  # (n_items,)
    cluster_preference: np.ndarray  # (n_users, K)

    def true_scores(self, users: np.ndarray | list[int] | None = None) -> np.ndarray:
        """(len(users), n_items) log-probability that a user's event picks each item.

        `users` are user indices (default: all — mind the size: n_users × n_items floats).
        """
        idx = np.arange(len(self.user_factors)) if users is None else np.asarray(users, np.int64)
        if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= len(self.user_factors))):
            raise DataError(f"users must be a 1-d array of user indices in [0, {len(self.user_factors)}), "
                            f"got {users!r}")
        log_pref = np.log(self.cluster_preference[idx])  # (n, K)
        return log_pref[:, self.item_cluster] + self.item_log_weight[None, :]  # (n, n_items)

    def __repr__(self) -> str:
        return f"LongTailDataset({self.data!r}, n_clusters={self.cluster_preference.shape[1]})"


def _words(n: int, rng: np.random.Generator, syllables: int = 2) -> np.ndarray:
    """`n` distinct pronounceable pseudo-words of at least `syllables` syllables."""
    base = len(_SYLLABLES)
    while base ** syllables < 4 * n:
        syllables += 1
    codes = rng.choice(base ** syllables, size=n, replace=False)
    digits = (codes[:, None] // base ** np.arange(syllables)[None, :]) % base  # (n, syllables)
    table = np.asarray(_SYLLABLES)
    return np.asarray(["".join(row) for row in table[digits]], dtype=object)


def _sample_rows(cum: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of `rows`, a column drawn from that row's distribution.

    `cum` is (n_rows, n_cols): row-wise cumulative probabilities ending at 1.
    """
    n_cols = cum.shape[1]
    flat = (cum + np.arange(len(cum))[:, None]).ravel()  # strictly increasing across rows
    pos = np.searchsorted(flat, rows + rng.random(len(rows)), side="right") - rows * n_cols
    return np.clip(pos, 0, n_cols - 1)


def _unique_sorted(keys: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy's hash-based unique is several times slower here)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])]


def _row_cdf(p: np.ndarray) -> np.ndarray:
    cum = np.cumsum(p, axis=1)
    return cum / cum[:, -1:]


def _cap_weights(w: np.ndarray, expected_total: float, cap: float) -> np.ndarray:
    """Scale `w` to probabilities; no item's expected count may exceed `cap`."""
    p = w / w.sum()
    for _ in range(20):
        over = p * expected_total > cap
        if not over.any():
            break
        p[over] = cap / expected_total
        free = ~over
        p[free] *= (1.0 - p[over].sum()) / p[free].sum()
    return p


def make_longtail(
    n_users: int = 10_000,
    n_items: int = 20_000,
    interactions_per_user: float = 50,
    alpha: float = 1.2,
    tag_coverage: float = 2 / 3,
    n_tags: int = 1000,
    n_clusters: int | None = None,
    n_factors: int = 16,
    concentration: float = 3.0,
    noise: float = 0.1,
    activity_sigma: float = 1.0,
    max_item_share: float = 0.3,
    seed: int = 0,
) -> LongTailDataset:
    """Generate long-tail implicit feedback with informative but incomplete item content.

    Args:
        n_users, n_items: catalogue sizes; IDs are "u0000000"…, "i0000000"….
        interactions_per_user: mean distinct items per user (the lognormal's mean).
        alpha: Zipf exponent of item popularity (larger: a heavier head, a longer tail).
        tag_coverage: share of items that have tags and text (the rest have neither).
        n_tags: size of the tag vocabulary.
        n_clusters: latent clusters (default: 64, fewer for tiny catalogues).
        n_factors: latent dimensions of users and clusters.
        concentration: how sharply users prefer their best clusters (0: no preference).
        noise: share of events drawn ignoring the user's preference (by cluster popularity).
        activity_sigma: sigma of the lognormal user activity (0: every user the same).
        max_item_share: cap on the expected share of users any one item reaches.
        seed: seeds everything.

    At 200k items × 100k users × 5M interactions this takes well under a minute.
    """
    n_users = check_int("n_users", n_users, 1)
    n_items = check_int("n_items", n_items, 2)
    mean_k = check_number("interactions_per_user", interactions_per_user)
    if not 1 <= mean_k <= n_items / 2:
        raise DataError(f"interactions_per_user must be in [1, n_items / 2 = {n_items / 2:g}], "
                        f"got {interactions_per_user!r}")
    alpha = check_range("alpha", alpha, 0.0, 3.0)
    tag_coverage = check_range("tag_coverage", tag_coverage, 0.0, 1.0)
    n_tags = check_int("n_tags", n_tags, _CORE_TAGS)
    n_clusters = check_int("n_clusters", n_clusters, 1, none_ok=True)
    if n_clusters is None:
        n_clusters = int(np.clip(n_items // 10, 1, 64))
    n_clusters = min(n_clusters, n_items)
    n_factors = check_int("n_factors", n_factors, 1)
    concentration = check_range("concentration", concentration, 0.0, 20.0)
    noise = check_range("noise", noise, 0.0, 1.0)
    activity_sigma = check_range("activity_sigma", activity_sigma, 0.0, 3.0)
    max_item_share = check_range("max_item_share", max_item_share, 1e-6, 1.0)
    seed = check_int("seed", seed, 0)
    s_model, s_events, s_content = (np.random.default_rng(s)
                                    for s in np.random.SeedSequence(seed).spawn(3))

    # ---------------------------------------------------------------- the planted model
    U = s_model.normal(size=(n_users, n_factors))  # (n_users, d)
    C = s_model.normal(size=(n_clusters, n_factors))  # (K, d)
    cluster = np.concatenate([np.arange(n_clusters), s_model.integers(0, n_clusters, n_items - n_clusters)])
    cluster = s_model.permutation(cluster)  # (n_items,) every cluster has an item
    logits = U @ C.T * (concentration / np.sqrt(n_factors))  # (n_users, K)
    theta = np.exp(logits - logits.max(axis=1, keepdims=True))
    theta /= theta.sum(axis=1, keepdims=True)
    k = np.maximum(1, np.rint(s_model.lognormal(np.log(mean_k) - activity_sigma ** 2 / 2,
                                                 activity_sigma, n_users))).astype(np.int64)
    k = np.minimum(k, n_items // 2)  # (n_users,)
    rank = s_model.permutation(n_items) + 1
    p_item = _cap_weights(rank.astype(np.float64) ** -alpha, float(k.sum()), max_item_share * n_users)
    mass = np.bincount(cluster, weights=p_item, minlength=n_clusters)  # (K,) cluster popularity
    pref = (1 - noise) * theta + noise * mass[None, :]  # (n_users, K)
    within = p_item / mass[cluster]  # (n_items,) choice probability inside the cluster

    # ---------------------------------------------------------------- events
    order = np.argsort(cluster, kind="stable")  # items grouped by cluster
    cum_w = np.cumsum(within[order])  # each cluster's block rises by 1
    start = np.searchsorted(cluster[order], np.arange(n_clusters))  # (K,)
    base = np.where(start > 0, cum_w[np.maximum(start - 1, 0)], 0.0)
    pref_cdf = _row_cdf(pref)

    def draw(users: np.ndarray) -> np.ndarray:
        c = _sample_rows(pref_cdf, users, s_events)
        pos = np.searchsorted(cum_w, base[c] + s_events.random(len(users)), side="right")
        end = np.append(start[1:], n_items)
        return order[np.clip(pos, start[c], end[c] - 1)]

    # every item gets one user who likes its cluster (as in a catalogue built from the logs)
    seed_users = _sample_rows(_row_cdf(pref.T / pref.sum(axis=0)[:, None]), cluster, s_events)
    keys = seed_users * n_items + np.arange(n_items)
    want = k - np.bincount(seed_users, minlength=n_users)
    for _ in range(3):  # draw, merge repeated pairs, top up the users who lost some
        users = np.repeat(np.arange(n_users), np.maximum(want, 0))
        keys = _unique_sorted(np.concatenate([keys, users * n_items + draw(users)]))
        want = k - np.bincount(keys // n_items, minlength=n_users)
        if (want <= 0).all():
            break
    user_index, item_index = keys // n_items, keys % n_items  # sorted by (user, item)
    first = np.searchsorted(user_index, np.arange(n_users))
    shuffled = np.lexsort((s_events.random(len(keys)), user_index))  # a random order per user
    position = np.empty(len(keys), np.int64)
    position[shuffled] = np.arange(len(keys)) - first[user_index[shuffled]]
    times = s_events.uniform(0, 1e7, n_users)[user_index] + 60.0 * position  # a minute apart

    # ---------------------------------------------------------------- content
    tags_vocab = _words(n_tags, s_content)
    words_vocab = _words(_N_WORDS, s_content)
    core_tags = s_content.integers(0, n_tags, (n_clusters, _CORE_TAGS))
    core_words = s_content.integers(0, _N_WORDS, (n_clusters, _CORE_WORDS))
    has = s_content.random(n_items) < tag_coverage
    n_item_tags = s_content.integers(1, 6, n_items)  # 1–5
    tag_idx = np.where(s_content.random((n_items, 5)) < _P_CORE_TAG,
                       core_tags[cluster[:, None], s_content.integers(0, _CORE_TAGS, (n_items, 5))],
                       s_content.integers(0, n_tags, (n_items, 5)))  # (n_items, 5)
    n_item_words = s_content.integers(8, 16, n_items)
    word_idx = np.where(s_content.random((n_items, 15)) < _P_CORE_WORD,
                        core_words[cluster[:, None], s_content.integers(0, _CORE_WORDS, (n_items, 15))],
                        s_content.integers(0, _N_WORDS, (n_items, 15)))  # (n_items, 15)
    names = _words(n_items, s_content, 3)
    on = has[:, None] & (np.arange(5)[None, :] < n_item_tags[:, None])  # (n_items, 5)
    matrix = sp.csr_matrix((np.ones(int(on.sum()), np.float32), (np.nonzero(on)[0], tag_idx[on])),
                           shape=(n_items, n_tags))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # a tag drawn twice counts once
    item_tag_names = tags_vocab[matrix.indices]
    ptr = matrix.indptr
    tags_col = [item_tag_names[ptr[i]:ptr[i + 1]].tolist() if h else None for i, h in enumerate(has)]
    text_col: list = [None] * n_items
    for i in np.flatnonzero(has):  # one Python step per item with content, not per event
        text_col[i] = f"{names[i].capitalize()}: " + " ".join(words_vocab[word_idx[i, :n_item_words[i]]])
    features = FeatureMatrix([f"tag:{t}" for t in tags_vocab], matrix)

    users_map = IdMap([f"u{u:07d}" for u in range(n_users)], kind="user")
    items_map = IdMap([f"i{i:07d}" for i in range(n_items)], kind="item")
    data = InteractionData(users_map, items_map, user_index, item_index, None, times,
                           {"text": text_col, "tags": tags_col}, None, features)
    return LongTailDataset(data, U.astype(np.float32), C[cluster].astype(np.float32), cluster,
                           np.log(within).astype(np.float32), pref.astype(np.float32))

