"""The training step's loss and optimizer equal torch's reference implementations."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from multirec.optim import LazyAdam, OptimizerGroup, adam, adam_with_sparse, weighted_bce_sum


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weighted_bce_sum_equals_torch_in_value_and_gradient(dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(64, 300, generator=g, dtype=dtype) * 6).requires_grad_(True)
    x.data[0, :4] = torch.tensor([80.0, -80.0, 0.0, 1e-9], dtype=dtype)  # saturated and central
    t = (torch.rand(64, 300, generator=g) < 0.05).to(dtype)
    w = t + 0.7 * (1 - t) * (torch.rand(64, 300, generator=g) < 0.3).to(dtype) * 9.0
    ref = F.binary_cross_entropy_with_logits(x, t, weight=w, reduction="sum")
    (ref_grad,) = torch.autograd.grad(ref * 0.5, x)
    got = weighted_bce_sum(x, t, w)
    (got_grad,) = torch.autograd.grad(got * 0.5, x)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert got.shape == () and float(got.detach()) > 0
    torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(got_grad, ref_grad, rtol=tol, atol=tol)


def test_weighted_bce_sum_rejects_mismatched_shapes():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"one shape.*\(2, 3\).*\(3, 2\)"):
        weighted_bce_sum(x, torch.zeros(3, 2), torch.zeros(2, 3))


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_follows_the_reference_update(decoupled):
    """Fused where possible; the same trajectory as torch's default implementation."""

    def run(make):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(50, 8))
        opt = make([p])
        for step in range(20):
            loss = ((p - step / 10) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return opt, p.detach()

    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt, got = run(lambda ps: adam(ps, 0.05, 0.01, decoupled=decoupled))
    _, want = run(lambda ps: cls(ps, lr=0.05, weight_decay=0.01, foreach=False))
    assert isinstance(opt, cls) and opt.defaults["fused"] is True  # CPU float32: fused
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_adam_falls_back_where_fused_is_not_supported():
    opt = adam([torch.nn.Parameter(torch.zeros(3, device="meta"))], 0.1, decoupled=True)
    assert isinstance(opt, torch.optim.AdamW) and not opt.defaults["fused"]


def _tables_and_dense(seed: int = 0):
    torch.manual_seed(seed)
    emb = torch.nn.Embedding(30, 4, sparse=True)
    lin = torch.nn.Linear(4, 1)
    return emb, lin


def _loss(emb, lin, rows):
    return (lin(emb(rows)) ** 2).sum() + (emb(rows) - 1).pow(2).sum()


# ---------------------------------------------------------------------- lazy Adam (sparse)
def _sparse_steps(make_opt, steps: int = 6, seed: int = 0):
    """Train an nn.Embedding(sparse=True) for a few steps on fixed random row batches."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.Embedding(50, 4, sparse=True)
    with torch.no_grad():
        emb.weight.copy_(torch.randn(50, 4, generator=g))
    opt = make_opt([emb.weight])
    for _ in range(steps):
        rows = torch.randint(0, 30, (40,), generator=g)  # rows 30..49 are never touched; repeats
        loss = (emb(rows) * torch.randn(40, 4, generator=g)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return emb.weight.detach(), opt


def test_lazy_adam_equals_torch_sparse_adam_and_leaves_untouched_rows():
    got, opt = _sparse_steps(lambda p: LazyAdam(p, lr=0.05))
    want, _ = _sparse_steps(lambda p: torch.optim.SparseAdam(p, lr=0.05))
    start, _ = _sparse_steps(lambda p: LazyAdam(p, lr=0.05), steps=0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.equal(got[:30], start[:30])
    assert torch.equal(got[30:], start[30:])  # never touched: never moved
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["step"] == 6 and torch.equal(state["exp_avg"][30:], torch.zeros(20, 4))


def test_lazy_adam_refuses_dense_gradients_and_bad_settings():
    w = torch.nn.Parameter(torch.zeros(3, 2))
    w.grad = torch.ones(3, 2)
    with pytest.raises(RuntimeError, match="sparse gradients"):
        LazyAdam([w]).step()
    with pytest.raises(ValueError, match="lr"):
        LazyAdam([w], lr=0.0)


def test_optimizer_group_state_round_trip_and_layout_check():
    def make():
        torch.manual_seed(0)
        emb, lin = torch.nn.Embedding(10, 3, sparse=True), torch.nn.Linear(3, 1)
        return emb, lin, adam_with_sparse(list(lin.parameters()), [emb.weight], lr=0.1)

    def step(emb, lin, opt, rows):
        opt.zero_grad()
        lin(emb(torch.tensor(rows))).sum().backward()
        opt.step()

    emb, lin, opt = make()
    assert isinstance(opt, OptimizerGroup) and len(opt.param_groups) == 2
    step(emb, lin, opt, [1, 2, 2])
    saved = opt.state_dict()
    assert [g["part"] for g in saved["param_groups"]] == [0, 1]
    assert sorted(saved["state"]) == [0, 1, 2]  # one numbering: Linear's 2 tensors, the table
    emb2, lin2, opt2 = make()
    with torch.no_grad():
        emb2.weight.copy_(emb.weight)
        for a, b in zip(lin2.parameters(), lin.parameters()):
            a.copy_(b)
    opt2.load_state_dict(copy.deepcopy(saved))  # as from a file: no tensors shared with opt
    step(emb, lin, opt, [2, 5])
    step(emb2, lin2, opt2, [2, 5])
    assert torch.equal(emb.weight, emb2.weight)
    with pytest.raises(ValueError, match="sparse_updates"):
        opt2.load_state_dict(torch.optim.Adam(lin.parameters()).state_dict())
    with pytest.raises(ValueError, match="weight decay"):
        adam_with_sparse([], [emb.weight], lr=0.1, weight_decay=0.1)
    assert isinstance(adam_with_sparse(list(lin.parameters()), [], lr=0.1), torch.optim.Adam)
