"""HTTP serving of a trained model with FastAPI (`pip install 'multirec[serve]'`).

    >>> app = create_app(model)               # any ASGI server, or:
    >>> serve("model_dir", port=8000)         # uvicorn on 127.0.0.1

Endpoints: `GET /health`, `GET|POST /recommend`, `GET /similar`, `GET /search`,
`GET /explain` and `GET /` (a one-page HTML view). User mistakes give 4xx answers whose
`detail` names the bad value: an unknown user/item ID → 404, a bad `n` or an empty query →
422. Model calls are serialised with a lock (the model is not thread-safe).
"""

import os
import threading
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any

import numpy as np

from . import __version__
from .errors import MissingBackendError, MultirecError, NotFittedError, UnknownIDError

__all__ = ["create_app", "serve", "MAX_N"]

MAX_N = 1000  # largest `n` a request may ask for
_NEW_USER = "__multirec_new_user__"  # key of an anonymous fold-in history


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError as exc:
        raise MissingBackendError("fastapi", "serve", "multirec.serve") from exc
    return fastapi


def _py(x: Any) -> Any:
    """JSON-able Python values from numpy scalars/arrays (NaN/inf → None)."""
    if isinstance(x, dict):
        return {str(k): _py(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_py(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _ranked(ids: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """[{item, score, rank}] for one row of (ids, scores), without the None padding."""
    return [{"item": _py(i), "score": _py(float(s)), "rank": r + 1}
            for r, (i, s) in enumerate(zip(ids, scores)) if i is not None]


def _resolve(idmap: Any, raw: str | int) -> str | int:
    """The model's ID for `raw` (query strings are tried as ints when the model uses ints)."""
    if raw in idmap:
        return raw
    if isinstance(raw, str):
        try:
            as_int = int(raw)
        except ValueError:
            as_int = None
        if as_int is not None and as_int in idmap:
            return as_int
    return raw  # unknown: the model's call raises UnknownIDError naming it


def create_app(model: Any) -> Any:
    """A `fastapi.FastAPI` app serving `model` (a fitted `MultimodalRecommender`)."""
    fastapi = _fastapi()
    from fastapi import Body, HTTPException, Query
    from fastapi.responses import HTMLResponse
    from pydantic import BaseModel, Field

    if not hasattr(model, "network"):
        raise NotFittedError("create_app() needs a fitted model; call fit(data) or "
                             "MultimodalRecommender.from_pretrained(path) first")
    lock = threading.Lock()
    page = resources.files("multirec").joinpath("static/index.html").read_text(encoding="utf-8")

    def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run a model call under the lock; library errors from user input become 4xx."""
        try:
            with lock:
                return fn(*args, **kw)
        except UnknownIDError as exc:
            raise HTTPException(404, str(exc)) from exc
        except MultirecError as exc:
            if isinstance(exc, (ValueError, KeyError)):
                raise HTTPException(422, str(exc)) from exc
            raise

    def users(raw: str | int) -> str | int:
        return _resolve(model.user_map_, raw)

    def items(raw: str | int) -> str | int:
        return _resolve(model.item_map_, raw)

    def recommend(user: str | int | None, n: int, filter_seen: bool,
                  history: list[str | int] | None) -> dict[str, Any]:
        if user is None and history is None:
            raise HTTPException(422, "give a user ID (user=...) or the item IDs a new user "
                                     "interacted with (history=...)")
        if history is not None:
            key = _NEW_USER if user is None else user
            hist = {key: [items(i) for i in history]}
            ids, scores = call(model.recommend, key, n=n, filter_seen=filter_seen, history=hist)
        else:
            key = users(user)
            ids, scores = call(model.recommend, key, n=n, filter_seen=filter_seen)
        return {"user": _py(user), "n": n, "items": _ranked(ids, scores)}

    class RecommendRequest(BaseModel):
        user: str | int | None = Field(None, description="a known user ID")
        n: int = Field(10, ge=1, le=MAX_N)
        filter_seen: bool = True
        history: list[str | int] | None = Field(
            None, description="item IDs of a user unknown to the model (fold-in)")

    N = Annotated[int, Query(ge=1, le=MAX_N, description=f"number of results, 1..{MAX_N}")]
    ID = Annotated[str, Query(min_length=1, max_length=1000)]
    app = fastapi.FastAPI(title="multirec", description="Multimodal recommendations",
                          version=__version__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "n_users": len(model.user_map_), "n_items": len(model.item_map_),
                "modalities": list(model.modalities_)}

    @app.get("/recommend")
    def recommend_get(user: Annotated[str | None, Query(min_length=1)] = None, n: N = 10,
                      filter_seen: bool = True,
                      history: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
        return recommend(user, n, filter_seen, history)

    @app.post("/recommend")
    def recommend_post(req: Annotated[RecommendRequest, Body()]) -> dict[str, Any]:
        return recommend(req.user, req.n, req.filter_seen, req.history)

    @app.get("/similar")
    def similar(item: ID, n: N = 10) -> dict[str, Any]:
        ids, scores = call(model.similar_items, items(item), n=n)
        return {"item": item, "n": n, "items": _ranked(ids, scores)}

    @app.get("/search")
    def search(q: ID, n: N = 10) -> dict[str, Any]:
        if not q.strip():
            raise HTTPException(422, f"the search query is blank ({q!r}); give some text")
        ids, scores = call(model.search, q, n=n)
        return {"q": q, "n": n, "items": _ranked(ids, scores)}

    @app.get("/explain")
    def explain(user: ID, item: ID) -> dict[str, Any]:
        return _py(call(model.explain, users(user), items(item)))

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app


def serve(model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load `MultimodalRecommender.from_pretrained(model_dir)` once and serve it with uvicorn.

    Binds to 127.0.0.1 (this machine only) unless `host` says otherwise, e.g. "0.0.0.0".
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingBackendError("uvicorn", "serve", "multirec.serve.serve") from exc
    from .model import MultimodalRecommender

    app = create_app(MultimodalRecommender.from_pretrained(model_dir))
    uvicorn.run(app, host=host, port=int(port))
