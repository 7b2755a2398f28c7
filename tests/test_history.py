"""History: JSON round trip and the training-curve plot; progress bar / logger switches."""

from __future__ import annotations

import json
import logging
import math

import pytest

from multirec.errors import DataError, MissingBackendError
from multirec.history import History
from multirec.progress import get_logger, progress, progress_enabled


def _history() -> History:
    epochs = [{"epoch": e, "loss": 1.0 / (e + 1)} for e in range(6)]
    for e in (1, 3, 5):
        epochs[e]["val_ndcg@10"] = 0.1 * e
    return History(epochs=epochs, best_epoch=5, best_score=0.5, stopped_early=True, seconds=1.5,
                   item_item_scale=0.25)


def test_to_dict_from_dict_round_trips_through_json():
    h = _history()
    d = h.to_dict()
    assert d["epochs"] is not h.epochs and d["epochs"][0] is not h.epochs[0]  # copied
    back = History.from_dict(json.loads(json.dumps(d)))
    assert back == h
    empty = History.from_dict(json.loads(json.dumps(History().to_dict())))  # -inf survives
    assert empty.best_score == -math.inf and empty == History()


def test_from_dict_rejects_unknown_fields_and_bad_epochs():
    with pytest.raises(DataError, match="'bogus'"):
        History.from_dict({"bogus": 1})
    with pytest.raises(DataError, match="epochs"):
        History.from_dict({"epochs": "not a list"})
    with pytest.raises(DataError, match="dict"):
        History.from_dict([1, 2])


def test_fitted_model_history_round_trips():
    from multirec.datasets.synthetic import make_synthetic
    from multirec.model import MultimodalRecommender

    ds = make_synthetic(n_users=30, n_items=25, interactions_per_user=5, modalities=("text",), seed=0)
    model = MultimodalRecommender(encoders={"text": "text-hash"}, epochs=2, eval_every=1, dim=8,
                                  show_progress=False).fit(ds.data)
    h = model.history_
    assert len(h.epochs) == 2 and any(k.startswith("val_ndcg") for k in h.epochs[-1])
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h


def test_plot_draws_loss_and_validation_ndcg():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    out = _history().plot(ax)
    assert out is ax
    (loss,) = ax.get_lines()
    assert list(loss.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(loss.get_ydata()) == pytest.approx([1 / (e + 1) for e in range(6)])
    twin = [a for a in fig.axes if a is not ax]
    assert len(twin) == 1
    ndcg = [ln for ln in twin[0].get_lines() if ln.get_label() == "val_ndcg@10"][0]
    assert list(ndcg.get_xdata()) == [2, 4, 6]
    assert list(ndcg.get_ydata()) == pytest.approx([0.1, 0.3, 0.5])
    plt.close(fig)
    new_ax = _history().plot()  # makes its own figure
    assert new_ax.get_xlabel() == "epoch"
    plt.close(new_ax.figure)


def test_plot_of_an_empty_history_says_to_train():
    pytest.importorskip("matplotlib")
    with pytest.raises(DataError, match="fit"):
        History().plot()


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(MissingBackendError, match=r"multirec\[plot\]"):
        _history().plot()


# ------------------------------------------------------------------------ progress, logging
@pytest.mark.parametrize("env, value, enabled", [
    ("MULTIREC_PROGRESS", "0", False), ("MULTIREC_PROGRESS", "off", False),
    ("MULTIREC_PROGRESS", "1", True), ("TQDM_DISABLE", "1", False), ("TQDM_DISABLE", "0", True),
])
def test_env_switches_progress_bars(monkeypatch, env, value, enabled):
    monkeypatch.delenv("MULTIREC_PROGRESS", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress_enabled()
    monkeypatch.setenv(env, value)
    assert progress_enabled() is enabled
    bar = progress(range(3), desc="x")
    assert bar.disable is (not enabled)
    assert list(bar) == [0, 1, 2]  # a disabled bar still iterates


def test_progress_enabled_false_and_manual_bar(monkeypatch, capsys):
    monkeypatch.delenv("MULTIREC_PROGRESS", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with progress(total=5, enabled=False, unit="user") as bar:
        bar.update(5)
        assert bar.disable
    assert capsys.readouterr().err == ""
    with progress(total=4, desc="work", unit="user") as bar:
        bar.update(4)
        assert bar.n == 4 and not bar.disable
    assert "work" in capsys.readouterr().err


def test_get_logger_names():
    root = get_logger()
    assert root is logging.getLogger("multirec")
    assert any(isinstance(h, logging.NullHandler) for h in root.handlers)
    assert get_logger("export").name == "multirec.export"
    assert get_logger("multirec.serve").name == "multirec.serve"
    assert get_logger("multirec") is root
