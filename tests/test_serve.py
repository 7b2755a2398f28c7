"""multirec.serve: every endpoint answers what the library call gives; user mistakes are 4xx."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from multirec.datasets.synthetic import make_synthetic  # noqa: E402
from multirec.model import MultimodalRecommender  # noqa: E402
from multirec.serve import MAX_N, create_app  # noqa: E402


@pytest.fixture(scope="module")
def model():
    ds = make_synthetic(n_users=40, n_items=30, interactions_per_user=6, modalities=("text",), seed=1)
    return MultimodalRecommender(encoders={"text": "text-hash"}, epochs=2, dim=8,
                                 show_progress=False, seed=0).fit(ds.data)


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model)) as c:
        yield c


def _items(body):
    return [r["item"] for r in body["items"]]


def _expected(ids, scores):
    keep = [i for i, x in enumerate(ids) if x is not None]
    return [ids[i] for i in keep], [float(scores[i]) for i in keep]


def test_health(client, model):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "n_users": 40, "n_items": 30, "modalities": ["text"]}


def test_recommend_get_and_post_match_the_library(client, model):
    ids, scores = _expected(*model.recommend("user_0003", n=7))
    r = client.get("/recommend", params={"user": "user_0003", "n": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert _items(body) == ids
    assert [x["rank"] for x in body["items"]] == list(range(1, 8))
    np.testing.assert_allclose([x["score"] for x in body["items"]], scores, rtol=1e-6)
    post = client.post("/recommend", json={"user": "user_0003", "n": 7})
    assert post.status_code == 200 and _items(post.json()) == ids


def test_recommend_filter_seen_false_matches(client, model):
    ids, _ = _expected(*model.recommend("user_0005", n=30, filter_seen=False))
    body = client.get("/recommend", params={"user": "user_0005", "n": 30, "filter_seen": False}).json()
    assert _items(body) == ids and len(ids) == 30
    seen, _ = _expected(*model.recommend("user_0005", n=30))
    assert len(_items(client.get("/recommend", params={"user": "user_0005", "n": 30}).json())) \
        == len(seen) < 30  # seen items are filtered, padding dropped


def test_recommend_history_for_a_new_user(client, model):
    hist = ["item_0001", "item_0004", "item_0009"]
    ids, _ = _expected(*model.recommend("someone", n=5, history={"someone": hist}))
    post = client.post("/recommend", json={"history": hist, "n": 5})
    assert post.status_code == 200, post.text
    assert _items(post.json()) == ids and not set(ids) & set(hist)
    get = client.get("/recommend", params=[("history", h) for h in hist] + [("n", 5)])
    assert get.status_code == 200 and _items(get.json()) == ids


def test_similar_search_explain_match_the_library(client, model):
    ids, _ = _expected(*model.similar_items("item_0002", n=4))
    assert _items(client.get("/similar", params={"item": "item_0002", "n": 4}).json()) == ids
    ids, scores = _expected(*model.search("red fast", n=6))
    body = client.get("/search", params={"q": "red fast", "n": 6}).json()
    assert _items(body) == ids
    np.testing.assert_allclose([x["score"] for x in body["items"]], scores, rtol=1e-6)
    want = model.explain("user_0001", "item_0007")
    got = client.get("/explain", params={"user": "user_0001", "item": "item_0007"}).json()
    assert got["user"] == "user_0001" and got["item"] == "item_0007"
    assert set(got["contributions"]) == set(want["contributions"])
    for k, v in want["contributions"].items():
        assert got["contributions"][k] == pytest.approx(v, rel=1e-6, abs=1e-9)
    assert got["score"] == pytest.approx(float(want["score"]), rel=1e-6)


@pytest.mark.parametrize("path, params, name", [
    ("/recommend", {"user": "nobody"}, "nobody"),
    ("/similar", {"item": "item_9999"}, "item_9999"),
    ("/explain", {"user": "user_0001", "item": "no-such-item"}, "no-such-item"),
    ("/explain", {"user": "ghost", "item": "item_0001"}, "ghost"),
])
def test_unknown_ids_are_404_naming_the_id(client, path, params, name):
    r = client.get(path, params=params)
    assert r.status_code == 404
    assert name in r.json()["detail"]


def test_unknown_user_in_a_post_is_404(client):
    r = client.post("/recommend", json={"user": "stranger", "n": 3})
    assert r.status_code == 404 and "'stranger'" in r.json()["detail"]


def test_unknown_history_item_is_404(client):
    r = client.post("/recommend", json={"history": ["item_0001", "bogus_item"]})
    assert r.status_code == 404 and "bogus_item" in r.json()["detail"]


@pytest.mark.parametrize("n", [0, -3, MAX_N + 1, "ten", 2.5])
def test_bad_n_is_422(client, n):
    for path, params in (("/recommend", {"user": "user_0001"}), ("/similar", {"item": "item_0001"}),
                         ("/search", {"q": "red"})):
        r = client.get(path, params={**params, "n": n})
        assert r.status_code == 422, (path, n, r.text)
        assert [d["loc"] for d in r.json()["detail"]] == [["query", "n"]]  # names the parameter
    r = client.post("/recommend", json={"user": "user_0001", "n": n})
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["detail"]] == [["body", "n"]]


@pytest.mark.parametrize("q", ["", "   "])
def test_empty_query_is_422(client, q):
    r = client.get("/search", params={"q": q})
    assert r.status_code == 422


def test_missing_arguments_are_422(client):
    assert client.get("/recommend").status_code == 422
    assert client.post("/recommend", json={}).status_code == 422
    assert client.post("/recommend", json={"user": "user_0001", "history": "item_0001"}).status_code == 422
    assert client.get("/explain", params={"user": "user_0001"}).status_code == 422
    assert client.get("/search").status_code == 422


def test_int_ids_from_query_strings(tmp_path):
    from multirec.data import InteractionData

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 120), rng.integers(100, 130, 120)
    data = InteractionData.from_arrays(users.tolist(), items.tolist(),
                                       item_content={"text": {i: f"thing {i % 7}" for i in range(100, 130)}})
    model = MultimodalRecommender(encoders={"text": "text-hash"}, epochs=1, dim=8,
                                  show_progress=False).fit(data)
    u = int(users[0])
    ids, _ = _expected(*model.recommend(u, n=5))
    with TestClient(create_app(model)) as c:
        body = c.get("/recommend", params={"user": str(u), "n": 5}).json()
        assert _items(body) == ids and all(isinstance(i, int) for i in _items(body))
        assert c.get("/similar", params={"item": "105"}).status_code == 200
        r = c.get("/recommend", params={"user": "9999"})
        assert r.status_code == 404 and "9999" in r.json()["detail"]


def test_index_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for needle in ('id="user"', 'id="q"', "/recommend", "/explain", "/search", "contributions"):
        assert needle in html
    assert "http://" not in html and "https://" not in html  # no CDN


def test_create_app_refuses_an_unfitted_model():
    from multirec.errors import NotFittedError

    with pytest.raises(NotFittedError, match="fit"):
        create_app(MultimodalRecommender())


# ---------------------------------------------------------------------------- real browser
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_page_renders_recommendations_in_headless_chromium(model, tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(model), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("uvicorn did not start within 20 s")
            time.sleep(0.05)
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
               "--dump-dom", f"http://127.0.0.1:{port}/?user=user_0003&n=5"]
        try:
            dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout
        except subprocess.TimeoutExpired:
            pytest.skip("headless chromium did not finish within 90 s")
        if "<html" not in dom:
            pytest.skip("headless chromium produced no DOM on this machine")
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            thread.join(timeout=10)
    ids, _ = _expected(*model.recommend("user_0003", n=5))
    shown = re.findall(r'data-item="([^"]*)"', dom)
    assert shown == ids  # in rank order
    assert 'class="bars"' in dom  # per-modality explanation bars were drawn


def test_serve_loads_the_saved_model_once_and_binds_localhost(model, tmp_path, monkeypatch):
    uvicorn = pytest.importorskip("uvicorn")
    from multirec.serve import serve

    model.save_pretrained(tmp_path / "m")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    serve(tmp_path / "m")
    serve(str(tmp_path / "m"), host="0.0.0.0", port=9123)
    assert [kw for _, kw in calls] == [{"host": "127.0.0.1", "port": 8000},
                                       {"host": "0.0.0.0", "port": 9123}]
    with TestClient(calls[0][0]) as c:  # the app serves the loaded model
        got = _items(c.get("/recommend", params={"user": "user_0002", "n": 5}).json())
    assert got == _expected(*model.recommend("user_0002", n=5))[0]


def test_serve_reports_a_bad_model_dir(tmp_path):
    from multirec.errors import ModelFileError
    from multirec.serve import serve

    with pytest.raises(ModelFileError):
        serve(tmp_path / "nothing-here")
