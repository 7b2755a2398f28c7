"""Data-parallel training (DDP, gloo on CPU) in 2 spawned processes on a planted problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import K, crash_at, params, planted_net, planted_problem  # tests/ is on sys.path

import multirec.training as training
from multirec import distributed
from multirec.training import TrainConfig, train_network, validation_ndcg

BATCH = 32  # global batch of the gradient check: BATCH / world users per rank
# No dropout: one step is then a deterministic function of the batch.
EXACT = dict(input_dropout=0.0, modality_dropout=0.0, id_dropout=0.0, user_cf_dropout=0.0,
             show_progress=False)
TRAIN = dict(epochs=12, batch_size=16, lr=5e-3, eval_every=3, patience=10, show_progress=False)


def _one_step_grads(batch_size: int) -> dict[str, torch.Tensor]:
    """Gradients of the first training step (averaged over ranks by DDP under a process group)."""
    train, _, content = planted_problem()
    net = planted_net(train, content)
    run = training._make_run(net, train, TrainConfig(**EXACT, batch_size=batch_size))
    users = training._epoch_users(run)[:batch_size]
    training._batch_loss(run, users).backward()
    return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}


def _fit_model(epochs: int) -> np.ndarray:
    from multirec.data import InteractionData
    from multirec.model import MultimodalRecommender

    train, _, content = planted_problem(n_users=60, n_items=30, seed=5)
    coo = train.tocoo()
    data = InteractionData.from_arrays(
        [f"u{u}" for u in coo.row], [f"i{i}" for i in coo.col],
        item_content={"vec": {f"i{i}": content[i] for i in range(30)}})
    cf = {"no_components": 4, "epochs": 3, "num_threads": 1, "seed": distributed.rank()}
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K}}, cf=cf, dim=8,
                                  epochs=epochs, eval_every=2, show_progress=False)
    return model.fit(data).score_users(np.arange(10))


def _crash_and_resume(checkpoint_dir: str) -> dict[str, torch.Tensor]:
    """Checkpoints every 3 epochs, a crash in epoch 8 on every rank, resume: final parameters."""
    train, valid, content = planted_problem()
    cfg = TrainConfig(**TRAIN, checkpoint_dir=checkpoint_dir, checkpoint_every=3, resume=True)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_network(planted_net(train, content), train, valid, cfg, callbacks=[crash_at(7)])
    net = planted_net(train, content, seed=7)
    train_network(net, train, valid, cfg)
    return params(net)


def _worker(rank: int, world: int, checkpoint_dir: str) -> dict:
    assert distributed.is_distributed() and distributed.rank() == rank
    grads = _one_step_grads(BATCH // world)
    train, valid, content = planted_problem()
    net = planted_net(train, content)
    history = train_network(net, train, valid, TrainConfig(**TRAIN))
    return {"grads": grads, "params": params(net), "epochs": history.epochs,
            "best": history.best_score, "model_scores": _fit_model(epochs=4),
            "resumed": _crash_and_resume(checkpoint_dir)}


@pytest.mark.slow  # ~8-20 s: two spawned processes import torch and train
def test_two_process_ddp_training(tmp_path):
    r0, r1 = distributed.launch(_worker, 2, str(tmp_path / "ck"))
    # 1. every rank ends with the same weights, history and (fit end to end) the same scores,
    #    although each rank trained LightFM with its own seed: buffers come from rank 0
    for k in r0["params"]:
        np.testing.assert_array_equal(r0["params"][k], r1["params"][k], err_msg=k)
    assert r0["epochs"] == r1["epochs"] and r0["best"] == r1["best"]
    np.testing.assert_array_equal(r0["model_scores"], r1["model_scores"])
    # ... also after a crash and a resume from rank 0's checkpoint
    for k in r0["params"]:
        np.testing.assert_array_equal(r0["resumed"][k], r0["params"][k], err_msg=k)
        np.testing.assert_array_equal(r1["resumed"][k], r0["params"][k], err_msg=k)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["latest"]
    # 2. one DDP step with BATCH/2 users per rank == one single-process step with BATCH users
    single = _one_step_grads(BATCH)
    assert r0["grads"].keys() == single.keys()
    for k, g in single.items():
        np.testing.assert_allclose(r0["grads"][k], g.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)
    # 3. it learned the planted signal: loss falls, validation NDCG far above random ranking
    losses = [e["loss"] for e in r0["epochs"]]
    assert losses[-1] < 0.8 * losses[0], losses
    train, valid, content = planted_problem()
    rand = planted_net(train, content, seed=1)
    random_ndcg = validation_ndcg(rand, train, valid, 10, torch.device("cpu"))
    assert r0["best"] > max(0.3, 2 * random_ndcg), (r0["best"], random_ndcg)
    # ... and about as well as one process with the same global batch
    net = planted_net(train, content)
    single_best = train_network(net, train, valid, TrainConfig(**{**TRAIN, "batch_size": 32})).best_score
    assert r0["best"] > single_best - 0.05, (r0["best"], single_best)


def test_helpers_outside_a_process_group():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert not distributed.is_distributed()
    assert distributed.init_from_env() == (0, 1)  # no torchrun variables: nothing to join
    np.testing.assert_array_equal(distributed.all_reduce_sum([1.0, 2.0]), [1.0, 2.0])
    t = torch.arange(3)
    assert distributed.all_gather(t)[0] is t
