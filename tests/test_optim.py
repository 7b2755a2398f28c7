"""The training step's loss and optimizer equal torch's reference implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from multirec.optim import adam, weighted_bce_sum


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
