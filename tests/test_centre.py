"""The redesigned centre: configs, sparse history, sampled negatives, bounded calibration,
the import graph, and scikit-learn parameter conventions."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import multirec
from multirec.config import NetworkConfig, TrainConfig, resolve_negatives
from multirec.errors import ConfigError
from multirec.model import MultimodalRecommender
from multirec.network import TwoTowerNetwork, sparse_bag
from multirec.posthoc import calibrate
from multirec.ranking import ndcg_at_k
from multirec.training import train_network

ROOT = Path(multirec.__file__).parent


def _modules() -> list[str]:
    names = ["multirec"]
    for info in pkgutil.walk_packages([str(ROOT)], "multirec."):
        names.append(info.name)
    return sorted(n for n in names if not n.endswith("__main__"))


def test_every_module_imports_in_isolation():
    """Each module imported first, in a fresh set of multirec/encoders modules (so no import
    order can hide a cycle); one interpreter keeps torch loaded between them."""
    code = (
        "import importlib, sys\n"
        "for m in sys.argv[1:]:\n"
        "    for k in [k for k in sys.modules if k.split('.')[0] in ('multirec', 'encoders')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as exc:\n"
        "        print(m, repr(exc)); sys.exit(1)\n")
    res = subprocess.run([sys.executable, "-c", code, *_modules()], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-800:] + res.stderr[-800:]


def _imports(path: Path) -> set[str]:
    """multirec modules imported at module level (top-level statements only)."""
    tree = ast.parse(path.read_text())
    pkg = "multirec" + "".join("." + p for p in path.relative_to(ROOT).parent.parts)
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
            mod = f"{base}.{node.module}" if node.module else base
            out.add(mod)
            if not node.module:
                out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("multirec"):
            out.add(node.module)
    return {m for m in out if m != pkg}


def test_import_graph_has_no_cycle_and_index_never_imports_model():
    graph = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(["multirec", *rel.parts]).removesuffix(".__init__")
        graph[name] = {m for m in _imports(path) if m.startswith("multirec")}
    assert "multirec.model" not in graph["multirec.index"]
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        if state.get(n) == 1:
            raise AssertionError("import cycle: " + " -> ".join(stack + [n]))
        if state.get(n) == 2 or n not in graph:
            return
        state[n] = 1
        for m in graph[n]:
            if m != "multirec":  # the package __init__ re-exports; it is imported last
                visit(m, stack + [n])
        state[n] = 2

    for n in graph:
        if n != "multirec":
            visit(n, [])


def test_no_module_imports_another_modules_private_names():
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and (node.level or node.module.startswith(
                    ("multirec", "encoders"))):
                private = [a.name for a in node.names
                           if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.name} imports private {private} from {node.module}"


# ---------------------------------------------------------------------- configs
def test_device_is_checked_at_construction():
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            MultimodalRecommender(device="cuda")
    with pytest.raises(ConfigError, match="'tpu'"):
        MultimodalRecommender(device="tpu")


@pytest.mark.parametrize("kw, match", [
    ({"epochs": "10"}, "epochs=.10."), ({"epochs": 2.5}, "epochs=2.5"), ({"lr": 1e8}, "lr=1000"),
    ({"num_threads": 0}, "num_threads"), ({"negatives": -3}, "negatives"), ({"dim": 0}, "dim"),
    ({"fusion": "max"}, "max"), ({"cf": {"no_components": 0}}, "no_components=0"),
    ({"cf": {"components": 3}}, "components"), ({"item_item": "yes"}, "yes"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_settings_fail_at_construction_naming_the_value(kw, match):
    with pytest.raises(ConfigError, match=match):
        MultimodalRecommender(**kw)


def test_negatives_auto_rule():
    assert resolve_negatives("auto", 1000) == "all"
    assert resolve_negatives("auto", 100_000) == 1024
    assert resolve_negatives(50, 20) == "all"


def test_get_params_set_params_and_sklearn_clone():
    sklearn_base = pytest.importorskip("sklearn.base")
    model = MultimodalRecommender({"text": "text-hash"}, dim=16, epochs=3, seed=5)
    params = model.get_params()
    assert params["dim"] == 16 and params["epochs"] == 3 and params["seed"] == 5
    assert params["encoders"] == {"text": "text-hash"} and params["fusion"] == "sum"
    twin = sklearn_base.clone(model)
    assert twin.get_params() == params and twin is not model and not hasattr(twin, "history_")
    model.set_params(dim=8, lr=0.01)
    assert model.dim == 8 and model.train_config.lr == 0.01
    with pytest.raises(ConfigError, match="lr"):
        model.set_params(lr=-1.0)
    assert model.train_config.lr == 0.01  # a rejected set_params leaves the model as it was


def test_cf_seed_follows_the_model_seed_for_every_form_of_cf():
    assert MultimodalRecommender(seed=7)._resolve().cf.seed == 7
    assert MultimodalRecommender(seed=7, cf={"epochs": 3})._resolve().cf.seed == 7
    assert MultimodalRecommender(seed=7, cf={"seed": 1})._resolve().cf.seed == 1


# ---------------------------------------------------------------------- network
def _net(n_users=30, n_items=40, seed=0) -> TwoTowerNetwork:
    torch.manual_seed(seed)
    net = TwoTowerNetwork(NetworkConfig(n_users=n_users, n_items=n_items,
                                        content_dims={"vec": 5}, cf_dim=4, dim=8))
    with torch.no_grad():
        net.content_vec.normal_()
        net.has_vec.fill_(True)
        net.cf_item.normal_()
        net.cf_user.normal_()
        net.warm_item.fill_(True)
        net.has_cf.fill_(True)
        net.warm_user.fill_(True)
    return net.eval()


def test_sparse_history_gives_the_same_logits_as_the_dense_path():
    net = _net()
    hist = sp.random(6, 40, density=0.2, random_state=0, format="csr", dtype=np.float32)
    hist.data[:] = 1.0
    items = torch.arange(40)
    with torch.no_grad():
        out = net.items(items)
        ctx = net.context(items, out)
        users = torch.arange(6)
        dense = net.logits(net.users(users, torch.from_numpy(hist.toarray()), ctx), out)
        sparse = net.logits(net.users(users, sparse_bag(hist), ctx), out)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)


def _planted(n_users=200, n_items=600, per_user=15, seed=0):
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    logits = 2.0 * U @ V.T
    rows, cols = [], []
    for u in range(n_users):
        p = np.exp(logits[u] - logits[u].max())
        cols += list(rng.choice(n_items, per_user, replace=False, p=p / p.sum()))
        rows += [u] * per_user
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    held = rng.random(x.nnz) < 0.2
    coo = x.tocoo()
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=x.shape)
    valid = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=x.shape)
    return train, valid, V.astype(np.float32)


def _full_net(n_users=12, n_items=40, seed=0) -> TwoTowerNetwork:
    """Every logit term on: content, CF, item-item, popularity prior, content neighbours."""
    torch.manual_seed(seed)
    net = TwoTowerNetwork(NetworkConfig(n_users=n_users, n_items=n_items, content_dims={"vec": 5},
                                        cf_dim=4, dim=8, item_item=True,
                                        content_neighbours={"tags": 3}))
    with torch.no_grad():
        for buf in (net.content_vec, net.cf_item, net.cf_user, net.content_basis):
            buf.normal_()
        net.item_prior.uniform_(0, 3)
        net.prior_weight.fill_(0.7)
        net.new_user_ii_halflife.fill_(2.0)
        net.has_vec.fill_(True)
        net.has_cf.fill_(True)
        net.warm_user[: n_users // 2] = True
        net.warm_item[: n_items * 3 // 4] = True  # the rest are cold (content neighbours)
        net.user_bias.weight.normal_()
        net.item_bias.weight.normal_()
    net.set_content_weight("tags", 0.5)
    return net.eval()


def test_pair_logits_equal_the_grid_at_those_cells():
    net = _full_net()
    hist = sp.random(12, 40, density=0.2, random_state=1, format="csr", dtype=np.float32)
    items = torch.arange(40)
    ii = torch.randn(12, 40)
    rng = np.random.default_rng(0)
    rows, cols = torch.from_numpy(rng.integers(12, size=200)), torch.from_numpy(rng.integers(40, size=200))
    with torch.no_grad():
        out = net.items(items)
        ctx = net.context(items, out)
        for users in (torch.arange(12), None):  # known users (half warm), users it does not know
            user = net.users(users, sparse_bag(hist), ctx, basis=net.content_basis)
            assert user.knn is not None and user.prior is not None
            grid = net.raw_logits(user, out, ii)  # (12, 40)
            pairs = net.pair_logits(user, out, rows, cols, ii[rows, cols])  # (200,)
            torch.testing.assert_close(pairs, grid[rows, cols], rtol=1e-5, atol=1e-5)


def test_sampled_step_scores_only_loss_cells_and_equals_the_grid_loss():
    """The sampled-negative step (each user's positives + K shared negatives) has the loss
    and the gradients of the full (B, P) pool grid weighted as before: positives 1, sampled
    non-positives neg_weight · n / K, everything else 0."""
    from multirec import training
    from multirec.itemitem import fit_item_item
    from multirec.optim import weighted_bce_sum

    train, _, _ = _planted(n_users=60, n_items=120, per_user=10)
    net = _full_net(n_users=60, n_items=120)
    net.train()
    ii = fit_item_item(train, l2=5.0)
    cfg = TrainConfig(negatives=16, batch_size=20, input_dropout=0.0, modality_dropout=0.0,
                      id_dropout=0.0, user_cf_dropout=0.0, neg_weight=0.5, show_progress=False)
    run = training._make_run(net, train, cfg, item_item=ii)
    users = training._epoch_users(run)[:20]
    state = run.rng.bit_generator.state
    loss = training._batch_loss(run, users)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    net.zero_grad()

    run.rng.bit_generator.state = state  # the same sampled negatives
    rows = train[users]
    pool, sampled = training._candidate_pool(run, rows)
    assert sampled.sum() == 16 and pool.size > 16
    logits = net(torch.from_numpy(users), sparse_bag(rows[:, pool]), torch.from_numpy(pool),
                 ii=torch.from_numpy(ii.scores_at(rows, pool)), drop_p=run.drop_p,
                 use_cf=torch.ones(20, dtype=torch.bool))  # (B, P)
    logits = training._unknown_as_prior(run, logits, pool)  # unknown items: the cold prior only
    target = torch.from_numpy(rows[:, pool].toarray())
    neg = 0.5 * (1 - target) * torch.from_numpy(sampled).float() * (120 / 16)
    expected = weighted_bce_sum(logits, target, target + neg) / 20
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    for k, g in grads.items():
        torch.testing.assert_close(g, net.get_parameter(k).grad, rtol=1e-4, atol=1e-5, msg=k)


def test_sampled_negatives_learn_a_planted_signal():
    train, valid, V = _planted()
    torch.manual_seed(0)
    net = TwoTowerNetwork(NetworkConfig(n_users=train.shape[0], n_items=train.shape[1],
                                        content_dims={"vec": 4}, dim=16))
    with torch.no_grad():
        net.content_vec.copy_(torch.from_numpy(V))
        net.has_vec.fill_(True)
        net.warm_item.copy_(torch.from_numpy(np.diff(train.tocsc().indptr) > 0))
        net.warm_user.copy_(torch.from_numpy(np.diff(train.indptr) > 0))
    cfg = TrainConfig(epochs=12, negatives=64, batch_size=32, eval_every=3, patience=10,
                      show_progress=False)
    history = train_network(net, train, valid, cfg)
    rng = np.random.default_rng(1)
    rand_sum, rand_n = ndcg_at_k(rng.random(train.shape), valid, 10, exclude=train)
    assert history.best_score > 3 * rand_sum / rand_n
    assert history.best_score > history.epochs[0].get("val_ndcg@10", 0.0) or history.best_epoch == 0


def test_calibration_memory_does_not_grow_with_the_catalogue():
    peaks = []
    for n_items in (2_000, 16_000):
        net = _net(n_users=400, n_items=n_items)
        rng = np.random.default_rng(0)
        rows = np.repeat(np.arange(400), 6)
        train = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, rng.integers(0, n_items, rows.size))),
                              shape=(400, n_items))
        valid = sp.csr_matrix((np.ones(400, np.float32), (np.arange(400), rng.integers(0, n_items, 400))),
                              shape=(400, n_items))
        tracemalloc.start()
        calibrate(net, train, valid, negatives_per_user=100)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 8x the items: the kept (logit, label, weight) triples are the same size; only one
    # (block × items) logits block is alive at a time (bounded by scoring.logits_batch_size).
    full_matrix = 400 * 16_000 * 8  # what a float64 users × items matrix would take
    assert peaks[1] < full_matrix / 3
    assert peaks[1] < 3 * peaks[0] + 2e6


def test_default_settings_are_reproducible():
    """Defaults (LightFM included: one thread unless told otherwise) give identical scores."""
    from multirec.datasets.synthetic import make_synthetic

    data = make_synthetic(n_users=60, n_items=50, seed=3).data
    kw = dict(encoders=None, epochs=3, show_progress=False, cf={"epochs": 3})
    runs = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)  # the caller's RNG state must not matter
        np.random.seed(caller_seed)
        runs.append(MultimodalRecommender(**kw).fit(data).score_users(np.arange(10)))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert MultimodalRecommender()._resolve().cf.num_threads == 1


def test_binary_copies_and_leaves_its_input_alone():
    from multirec.scoring import binary

    x = sp.csr_matrix(np.array([[0, 3.0, 3.0], [2.0, 0, 0]], np.float32))
    out = binary(x)
    np.testing.assert_array_equal(x.data, [3.0, 3.0, 2.0])  # the caller's weights are kept
    np.testing.assert_array_equal(out.toarray(), [[0, 1, 1], [1, 0, 0]])
    assert out.has_sorted_indices and out.dtype == np.float32
