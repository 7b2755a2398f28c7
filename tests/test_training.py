"""train_network: checkpoints and exact resume, NaN handling, Ctrl-C, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.checkpoint import checkpoint_path
from multirec.config import NetworkConfig
from multirec.data import InteractionData
from multirec.errors import ConfigError, ModelFileError, TrainingDivergedError
from multirec.model import MultimodalRecommender
from multirec.network import TwoTowerNetwork
from multirec.training import TrainConfig, train_network

K = 6
FAST = dict(epochs=10, batch_size=32, lr=3e-3, eval_every=2, patience=10, show_progress=False)


def planted_problem(n_users: int = 150, n_items: int = 80, seed: int = 0):
    """Interactions drawn from planted user/item factors; content = noisy item factors.

    Returns (train, valid, content): (n_users, n_items) csr matrices with 10 training and
    2 validation items per user, and (n_items, K) float32 content vectors.
    """
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, K)), rng.normal(size=(n_items, K))
    logits = 1.5 * U @ V.T
    rows, cols, held = [], [], []
    for u in range(n_users):
        p = np.exp(logits[u] - logits[u].max())
        items = rng.choice(n_items, 12, replace=False, p=p / p.sum())
        rows += [u] * 12
        cols += list(items)
        held += [False] * 10 + [True] * 2
    rows, cols, held = np.array(rows), np.array(cols), np.array(held)
    shape = (n_users, n_items)
    ones = np.ones(len(rows), np.float32)
    train = sp.csr_matrix((ones[~held], (rows[~held], cols[~held])), shape=shape)
    valid = sp.csr_matrix((ones[held], (rows[held], cols[held])), shape=shape)
    content = (V + 0.3 * rng.normal(size=V.shape)).astype(np.float32)
    return train, valid, content


def planted_net(train: sp.csr_matrix, content: np.ndarray, dim: int = 16, seed: int = 0) -> TwoTowerNetwork:
    """A content + ID network (no LightFM) with the planted content in its buffers."""
    torch.manual_seed(seed)
    net = TwoTowerNetwork(NetworkConfig(n_users=train.shape[0], n_items=train.shape[1],
                                        content_dims={"vec": content.shape[1]}, dim=dim))
    with torch.no_grad():
        net.content_vec.copy_(torch.from_numpy(content))
        net.has_vec.fill_(True)
        net.warm_item.copy_(torch.from_numpy(np.diff(train.tocsc().indptr) > 0))
        net.warm_user.copy_(torch.from_numpy(np.diff(train.indptr) > 0))
    return net


def params(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def assert_same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def crash_at(epoch: int):
    def callback(e: int, logs: dict) -> None:
        if e == epoch:
            raise RuntimeError("simulated crash")
    return callback


@pytest.fixture(scope="module")
def problem():
    return planted_problem()


# ---------------------------------------------------------------------- checkpoint / resume
def test_resume_after_crash_equals_uninterrupted_run(problem, tmp_path):
    train, valid, content = problem
    straight = planted_net(train, content)
    h_straight = train_network(straight, train, valid, TrainConfig(**FAST))

    ckpt = dict(FAST, checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=2, resume=True)
    crashed = planted_net(train, content)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_network(crashed, train, valid, TrainConfig(**ckpt), callbacks=[crash_at(6)])
    state = json.loads((checkpoint_path(tmp_path / "ck") / "state.json").read_text())
    assert state["epoch"] == 6 and len(state["history"]["epochs"]) == 6

    resumed = planted_net(train, content, seed=99)  # other initial weights: all come from the file
    h_resumed = train_network(resumed, train, valid, TrainConfig(**ckpt))
    assert_same_params(params(resumed), params(straight))
    assert h_resumed.epochs == h_straight.epochs and len(h_resumed.epochs) == 10
    assert (h_resumed.best_epoch, h_resumed.best_score) == (h_straight.best_epoch, h_straight.best_score)
    assert not h_resumed.stopped_early and not h_resumed.interrupted

    # the finished run left a final checkpoint: resuming again trains nothing, same weights
    again = planted_net(train, content, seed=5)
    h_again = train_network(again, train, valid, TrainConfig(**ckpt))
    assert h_again.epochs == h_straight.epochs
    assert_same_params(params(again), params(straight))
    # and the run can be extended by raising `epochs`
    longer = planted_net(train, content)
    h_longer = train_network(longer, train, valid, TrainConfig(**{**ckpt, "epochs": 12}))
    assert len(h_longer.epochs) == 12 and h_longer.epochs[:10] == h_straight.epochs


def test_checkpoint_files_are_json_and_safetensors(problem, tmp_path):
    train, valid, content = problem
    cfg = TrainConfig(**{**FAST, "epochs": 2}, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    train_network(planted_net(train, content), train, valid, cfg)
    latest = checkpoint_path(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]  # temp dirs cleaned up
    assert sorted(p.name for p in (tmp_path / "latest").iterdir()) == ["multirec.json", latest.name]
    assert sorted(p.name for p in latest.iterdir()) == ["manifest.json", "state.json",
                                                        "tensors.safetensors"]
    from safetensors.torch import load_file

    tensors = load_file(str(latest / "tensors.safetensors"))
    assert any(k.startswith("optim.") and k.endswith(".exp_avg") for k in tensors)
    assert tensors["rng.0.generator"].dtype == torch.uint8 and "net.content_vec" in tensors
    state = json.loads((latest / "state.json").read_text())
    assert state["numpy_rng"]["bit_generator"] == "PCG64" and state["epoch"] == 2
    # a corrupted tensor file is detected on resume, not silently used
    raw = bytearray((latest / "tensors.safetensors").read_bytes())
    raw[-3] ^= 0xFF
    (latest / "tensors.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        train_network(planted_net(train, content), train, valid,
                      TrainConfig(**{**FAST, "epochs": 2}, checkpoint_dir=str(tmp_path), resume=True))


def test_resume_from_another_run_names_the_mismatch(problem, tmp_path):
    train, valid, content = problem
    cfg = dict(FAST, epochs=2, checkpoint_dir=str(tmp_path), checkpoint_every=2, resume=True)
    train_network(planted_net(train, content, dim=16), train, valid, TrainConfig(**cfg))
    with pytest.raises(ConfigError, match=r"'ctx.weight' has shape \[16, 16\] in the checkpoint, \[8, 8\]"):
        train_network(planted_net(train, content, dim=8), train, valid, TrainConfig(**cfg))
    with pytest.raises(ConfigError, match=r"lr=0\.003 in the checkpoint, 0\.01 now"):
        train_network(planted_net(train, content), train, valid, TrainConfig(**{**cfg, "lr": 0.01}))
    other = train.copy()
    other[0, other[0].indices[0]] = 0
    other.eliminate_zeros()
    with pytest.raises(ConfigError, match="train data differ"):
        train_network(planted_net(other, content), other, valid, TrainConfig(**cfg))
    # settings that may change between runs do not block resuming
    train_network(planted_net(train, content), train, valid,
                  TrainConfig(**{**cfg, "epochs": 3, "patience": 5, "checkpoint_every": 0}))


def test_config_checks():
    with pytest.raises(ConfigError, match="checkpoint_every=2 needs checkpoint_dir"):
        TrainConfig(checkpoint_every=2)
    with pytest.raises(ConfigError, match="resume=True needs checkpoint_dir"):
        TrainConfig(resume=True)
    with pytest.raises(ConfigError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=-1, checkpoint_dir="x")
    with pytest.raises(ConfigError, match="distributed"):
        TrainConfig(distributed="yes")
    train, valid, content = planted_problem(n_users=20, n_items=20)
    with pytest.raises(ConfigError, match="torch.distributed is not initialised"):
        train_network(planted_net(train, content), train, valid, TrainConfig(distributed=True))


def test_model_fit_with_checkpoint_and_resume(tmp_path):
    train, _, content = planted_problem(n_users=80, n_items=40, seed=3)
    coo = train.tocoo()
    data = InteractionData.from_arrays(
        [f"u{u}" for u in coo.row], [f"i{i}" for i in coo.col],
        user_ids=[f"u{u}" for u in range(80)], item_ids=[f"i{i}" for i in range(40)],
        item_content={"vec": {f"i{i}": content[i] for i in range(40)}})
    kw = dict(encoders={"vec": {"name": "precomputed", "dim": K}},
              cf={"no_components": 8, "epochs": 5, "num_threads": 1},
              dim=16, epochs=6, eval_every=2, show_progress=False)
    users = np.arange(10)
    straight = MultimodalRecommender(**kw).fit(data)
    ck = dict(kw, checkpoint_dir=tmp_path / "ck", checkpoint_every=2, resume=True)
    with pytest.raises(RuntimeError, match="simulated crash"):
        MultimodalRecommender(**ck).fit(data, callbacks=[crash_at(3)])
    assert json.loads((checkpoint_path(tmp_path / "ck") / "state.json").read_text())["epoch"] == 2
    resumed = MultimodalRecommender(**ck).fit(data)
    np.testing.assert_array_equal(resumed.score_users(users), straight.score_users(users))
    assert resumed.history_.epochs == straight.history_.epochs
    assert resumed.get_config()["checkpoint_dir"] == str(tmp_path / "ck")
    ids, _ = resumed.recommend(["u1"], n=3)
    assert ids.shape == (1, 3)


# ---------------------------------------------------------------------- failures
def test_nan_loss_raises_and_restores_last_good_weights(problem):
    train, valid, content = problem
    net = planted_net(train, content)
    saved = {}

    def poison(epoch: int, logs: dict) -> None:
        if epoch == 3:  # after the evaluation at epoch 3 (eval_every=2)
            saved.update(params(net))
            with torch.no_grad():
                net.global_bias.fill_(math.nan)

    with pytest.raises(TrainingDivergedError, match="epoch 4.*last good weights were restored"):
        train_network(net, train, valid, TrainConfig(**FAST), callbacks=[poison])
    assert_same_params(params(net), saved)
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_keyboard_interrupt_keeps_best_weights_and_model_is_usable():
    train, _, content = planted_problem(n_users=80, n_items=40, seed=4)
    coo = train.tocoo()
    data = InteractionData.from_arrays(
        [f"u{u}" for u in coo.row], [f"i{i}" for i in coo.col],
        item_content={"vec": {f"i{i}": content[i] for i in range(40)}})
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K}}, cf=False,
                                  dim=16, epochs=20, eval_every=1, show_progress=False)
    best: dict = {"score": -math.inf}

    def watch_then_interrupt(epoch: int, logs: dict) -> None:
        if logs["val_ndcg@10"] > best["score"]:
            best.update(score=logs["val_ndcg@10"], epoch=epoch, params=params(model.network))
        if epoch == 4:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted"):
        model.fit(data, callbacks=[watch_then_interrupt])
    h = model.history_
    assert h.interrupted and len(h.epochs) == 5
    assert (h.best_epoch, h.best_score) == (best["epoch"], best["score"])
    assert_same_params(params(model.network), best["params"])
    ids, scores = model.recommend(["u0", "u1"], n=5)
    assert ids.shape == (2, 5) and np.isfinite(scores).all()


def test_same_seed_identical_metrics_and_weights(problem):
    train, valid, content = problem
    cfg = TrainConfig(**{**FAST, "epochs": 4, "negatives": 20, "loss": "bpr"})
    runs = []
    for _ in range(2):
        torch.manual_seed(np.random.randint(1000))  # the caller's RNG state must not matter
        net = planted_net(train, content)
        runs.append((train_network(net, train, valid, cfg), params(net)))
    (h1, p1), (h2, p2) = runs
    assert h1.epochs == h2.epochs and h1.best_score == h2.best_score
    assert_same_params(p1, p2)


# ---------------------------------------------------------------------- sparse updates
SAMPLED = dict(FAST, negatives=16)


def test_sampled_negatives_train_the_id_tables_sparsely_and_restore_them(problem):
    """With sparse_updates=True the ID tables get sparse gradients and lazy Adam:
    rows that are never in a pool (items nobody trained on) never move; afterwards the
    tables are dense again, and sparse_updates=False trains them densely."""
    train, valid, content = problem
    train = train.tolil()
    train[:, 70:] = 0  # items 70..79: no training interactions, only sampled now and then
    train = train.tocsr()
    train.eliminate_zeros()
    seen = []

    def spy(epoch, logs):
        seen.append([t.sparse for t in net.id_tables()])

    net = planted_net(train, content)
    start = net.item_bias.weight.detach().clone()
    train_network(net, train, valid, TrainConfig(**SAMPLED, sparse_updates=True), callbacks=[spy])
    assert seen and all(all(s) for s in seen)
    assert not any(t.sparse for t in net.id_tables())
    moved = (net.item_bias.weight.detach() != start).squeeze(1)
    assert moved[:70].any() and not moved[70:].any()  # unknown items: the cold prior only

    dense = planted_net(train, content)
    seen.clear()
    net = dense
    train_network(dense, train, valid, TrainConfig(**SAMPLED), callbacks=[spy])  # auto: 80 items
    assert seen and not any(any(s) for s in seen)


def test_resume_with_sparse_updates_equals_uninterrupted_run(problem, tmp_path):
    train, valid, content = problem
    straight = planted_net(train, content)
    train_network(straight, train, valid, TrainConfig(**SAMPLED, sparse_updates=True))
    ckpt = dict(SAMPLED, sparse_updates=True, checkpoint_dir=str(tmp_path / "ck"),
                checkpoint_every=2, resume=True)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_network(planted_net(train, content), train, valid, TrainConfig(**ckpt),
                      callbacks=[crash_at(4)])
    resumed = planted_net(train, content, seed=99)
    train_network(resumed, train, valid, TrainConfig(**ckpt))
    assert_same_params(params(resumed), params(straight))


@pytest.mark.parametrize("kw, match", [
    ({"sparse_updates": "yes"}, "sparse_updates"),
    ({"sparse_updates": 1}, "sparse_updates"),
    ({"sparse_updates": True, "weight_decay": 0.01}, "weight_decay"),
])
def test_sparse_updates_setting_is_checked(kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kw)


def test_sparse_updates_auto_rule():
    from multirec.config import SPARSE_UPDATES_MIN_ITEMS, resolve_sparse_updates

    big = SPARSE_UPDATES_MIN_ITEMS
    assert resolve_sparse_updates("auto", 1024, big) and not resolve_sparse_updates("auto", "all", big)
    assert not resolve_sparse_updates("auto", 1024, big - 1)
    assert not resolve_sparse_updates("auto", 1024, big, world_size=2)
    assert resolve_sparse_updates(True, "all", 10) and not resolve_sparse_updates(False, 1024, big)


def test_sparse_updates_true_is_refused_under_ddp_before_anything_is_set_up(problem, monkeypatch):
    from multirec import training

    train, valid, content = problem
    net = planted_net(train, content)
    monkeypatch.setattr(training, "_process_group", lambda cfg: (0, 2))  # as if 2 ranks
    with pytest.raises(ConfigError, match="DDP"):
        train_network(net, train, valid, TrainConfig(**SAMPLED, sparse_updates=True))
    assert not any(t.sparse for t in net.id_tables())
