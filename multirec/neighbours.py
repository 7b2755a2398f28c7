"""Content neighbours: cold items scored by how alike their content is to a user's history.

    knn(u, i) = Σ_s w_s ⟨p_u^s, g_i^s⟩,   p_u^s = Σ_{j ∈ hist(u)} g_j^s / sqrt(|hist(u)|)

`g^s (n_items, r_s)` are each source's item vectors, rows L2-normalised (all-zero for items
without that content):

- `"item_features"`, the item side features (tags, genres, ...): idf-weighted, rows normalised
  to A, then A·V·S from the top `FEATURE_RANK` singular pairs of A, so features that occur
  on the same items count as alike (two items with different tags of one genre are close);
- every frozen content modality (text, image, audio vectors): centred over the items that
  have it, then normalised.

The term is an item-kNN over content, the cold-start counterpart of the item-item (EASE)
term: it is used for cold items only (`TwoTowerNetwork` gates it by `1 - memory`), and its
weights `w_s` are chosen on the cold-item validation carve after training
(`multirec.posthoc.tune_cold_items`), 0 until then (and for a source that does not help).
Measured (`benchmarks/run.py`, cold-item protocol, 3 seeds, test NDCG@10 without → with):
ml-100k fused 0.265 → 0.286 (MiniLM text), long tail fused 0.200 → 0.234 (tags).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

__all__ = ["FEATURE_RANK", "feature_basis", "modality_basis", "content_basis", "content_centre",
           "centred_rows", "normalise_rows"]

FEATURE_RANK = 64  # singular pairs kept for the side-feature vectors
_DENSE_FEATURES = 2048  # up to this many distinct features: one dense eigendecomposition


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """`x` with every nonzero row scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def feature_basis(features: sp.spmatrix, rank: int = FEATURE_RANK, seed: int = 0
                  ) -> np.ndarray:  # (n_items, r) float32, r ≤ rank
    """Side-feature vectors `A·V·S` (rows normalised) of an (n_items, n_features) matrix."""
    a = sp.csr_matrix(features, dtype=np.float64)
    a.data = np.abs(a.data)
    df = np.diff(a.tocsc().indptr)  # (T,) items per feature
    a = a @ sp.diags(np.log((a.shape[0] + 1.0) / (df + 1.0)))  # idf
    norms = np.sqrt(np.asarray(a.multiply(a).sum(1)).ravel())
    a = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ a  # rows on the unit sphere
    n_feat = a.shape[1]
    r = int(min(rank, n_feat, max(a.shape[0] - 1, 1)))
    if r < 1 or a.nnz == 0:
        return np.zeros((a.shape[0], 0), np.float32)
    if n_feat <= _DENSE_FEATURES or r >= n_feat - 1:
        evals, vecs = np.linalg.eigh((a.T @ a).toarray())  # ascending
        v, s = vecs[:, -r:], np.sqrt(np.maximum(evals[-r:], 0.0))
    else:
        rng = np.random.default_rng(seed)
        _, s, vt = spla.svds(a, k=r, v0=rng.standard_normal(min(a.shape)))
        v = vt.T
    g = np.asarray(a @ (v * s))  # (n_items, r)
    return normalise_rows(g).astype(np.float32)


def _array(x: np.ndarray | torch.Tensor, dtype: type) -> np.ndarray:
    """A numpy view (or copy) of a tensor or array in `dtype`."""
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(
        dtype, copy=False)


def content_centre(vectors: np.ndarray | torch.Tensor, has: np.ndarray | torch.Tensor
                   ) -> np.ndarray:  # (d,) float64
    """Mean content vector of the items that have the content (`has`); zeros if none do.
    Items added after `fit` (`add_items`) are centred by it, as `modality_basis` centres."""
    x, mask = _array(vectors, np.float32), _array(has, bool)
    return x[mask].mean(0, dtype=np.float64) if mask.any() else np.zeros(x.shape[1])


def centred_rows(vectors: np.ndarray | torch.Tensor, centre: np.ndarray
                 ) -> np.ndarray:  # (n, d) float32
    """Content-neighbour vectors of content `vectors`: minus `centre`, rows normalised."""
    return normalise_rows(_array(vectors, np.float64) - centre).astype(np.float32)


def modality_basis(vectors: np.ndarray | torch.Tensor, has: np.ndarray | torch.Tensor
                   ) -> np.ndarray:  # (n_items, d) float32
    """Content vectors centred over the items that have them (`has`), rows normalised;
    items without the content get a zero row."""
    x, mask = _array(vectors, np.float32), _array(has, bool)
    out = np.zeros(x.shape, np.float32)
    if mask.any():
        out[mask] = centred_rows(x[mask], content_centre(x, mask))
    return out


def content_basis(n_items: int, features: sp.spmatrix | None,
                  content: dict[str, tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
                  *, rank: int = FEATURE_RANK, seed: int = 0
                  ) -> tuple[np.ndarray, dict[str, int]]:  # (n_items, R) float32, {source: r_s}
    """(n_items, R): every source's vectors side by side, and their widths, in order:
    `"item_features"` (when there are side features), then the modalities of `content`
    ({m: (vectors, has)})."""
    blocks: list[np.ndarray] = []
    widths: dict[str, int] = {}
    if features is not None and sp.csr_matrix(features).nnz:
        g = feature_basis(features, rank, seed)
        if g.shape[1]:
            blocks.append(g)
            widths["item_features"] = int(g.shape[1])
    for m, (vectors, has) in content.items():
        g = modality_basis(vectors, has)
        if g.shape[1] and np.any(g):
            blocks.append(g)
            widths[m] = int(g.shape[1])
    if not blocks:
        return np.zeros((n_items, 0), np.float32), {}
    bad = [b.shape for b in blocks if b.shape[0] != n_items]
    if bad:
        raise ValueError(f"content-neighbour sources must have {n_items} rows, got {bad}")
    return np.ascontiguousarray(np.hstack(blocks)), widths
