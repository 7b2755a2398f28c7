"""Saving never deletes what it did not write, survives kill -9, and loading trusts nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from nopickle import assert_not_pickle  # tests/ is on sys.path

from encoders import register_encoder
from encoders.simple import TextHashEncoder
from multirec import _files
from multirec.datasets.synthetic import make_synthetic
from multirec.errors import ConfigError, ModelFileError
from multirec.model import MultimodalRecommender

SMALL = {"n_users": 40, "n_items": 30, "interactions_per_user": 6, "modalities": ("text",)}
FILES = ["config.json", "history.json", "ids.json", "interactions.safetensors",
         "item_item.safetensors", "model.safetensors"]


@register_encoder("trust-path-hash", exist_ok=True)
class PathHashEncoder(TextHashEncoder):
    """text-hash with a (never read) local path argument, like a transformer's model folder."""

    def __init__(self, vocab_path: str, dim: int = 32) -> None:
        super().__init__(dim=dim)
        self.vocab_path = vocab_path


def _fit(encoders: dict) -> MultimodalRecommender:
    ds = make_synthetic(**SMALL, seed=0)
    return MultimodalRecommender(encoders=encoders, dim=8, epochs=2, show_progress=False,
                                 cf=False).fit(ds.data)


@pytest.fixture(scope="module")
def model() -> MultimodalRecommender:
    return _fit({"text": {"name": "text-hash", "dim": 64}})


def _scores(m: MultimodalRecommender) -> np.ndarray:
    return m.score_users(np.arange(5))


def _version(root: Path) -> Path:
    return root / json.loads((root / "multirec.json").read_text())["current"]


def _edit(root: Path, name: str, change) -> None:
    """Rewrite one file of a save and its manifest entry (a deliberate, consistent edit)."""
    folder = _version(root)
    path = folder / name
    if name.endswith(".json"):
        data = json.loads(path.read_text())
        path.write_text(json.dumps(change(data)))
    else:
        from safetensors.torch import load_file, save_file

        save_file(change(load_file(str(path))), str(path))
    _files.write_manifest(folder, FILES)


# ---------------------------------------------------------------------- never delete user files
def test_refuses_folder_with_user_files_and_keeps_them(model, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("my notes")
    from multirec.io import check_save_target

    check_save_target(tmp_path / "new")  # fine, and nothing is created
    assert not (tmp_path / "new").exists()
    with pytest.raises(ModelFileError, match=r"mine.*not empty.*'notes.txt'.*new or empty"):
        check_save_target(target)
    with pytest.raises(ModelFileError, match=r"mine.*not empty.*'notes.txt'.*new or empty"):
        model.save_pretrained(target)
    with pytest.raises(ModelFileError, match="mine"):
        model.save_pretrained(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "my notes"
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ModelFileError, match="not a directory"):
        model.save_pretrained(tmp_path / "a_file")


def test_overwrite_replaces_only_a_previous_save(model, tmp_path):
    target = tmp_path / "m"
    from multirec.io import save_model

    assert save_model(model, target) == _version(target)
    assert sorted(p.name for p in _version(target).iterdir()) == sorted(FILES + ["manifest.json"])
    first = _version(target)
    (target / "README.md").write_text("the user's own file")
    with pytest.raises(ModelFileError, match=r"already holds a saved.*overwrite=True"):
        model.save_pretrained(target)
    model.save_pretrained(target, overwrite=True)
    assert _version(target) != first and not first.exists()
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "multirec.json",
                                                        _version(target).name]
    assert (target / "README.md").read_text() == "the user's own file"
    loaded = MultimodalRecommender.from_pretrained(target)
    np.testing.assert_array_equal(_scores(loaded), _scores(model))
    for p in _version(target).iterdir():
        assert_not_pickle(p)


def test_save_into_current_directory(model, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    model.save_pretrained(".")
    np.testing.assert_array_equal(_scores(MultimodalRecommender.from_pretrained(".")),
                                  _scores(model))
    model.save_pretrained(".", overwrite=True)  # the folder itself is never renamed
    assert Path.cwd() == tmp_path / "empty" and len(list(Path(".").iterdir())) == 2
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "code.py").write_text("print(1)")
    monkeypatch.chdir(tmp_path / "project")
    with pytest.raises(ModelFileError, match="not empty.*'code.py'"):
        model.save_pretrained(".")
    assert [p.name for p in Path(".").iterdir()] == ["code.py"]


def test_item_item_weights_and_config_round_trip(model, tmp_path):
    from multirec.io import read_config

    assert model.item_item_ is not None  # "auto" turns it on for this small catalogue
    model.save_pretrained(tmp_path / "m")
    loaded = MultimodalRecommender.from_pretrained(tmp_path / "m")
    np.testing.assert_array_equal(loaded.item_item_.weights, model.item_item_.weights)
    assert loaded.item_item_.l2 == model.item_item_.l2
    config = read_config(tmp_path / "m")
    assert config["format_version"] == 2 and config["model"]["encoders"]["text"]["dim"] == 64
    assert config["model"]["cache_dir"] is None


def test_history_round_trips(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    loaded = MultimodalRecommender.from_pretrained(tmp_path / "m")
    assert len(model.history_.epochs) == 2
    assert loaded.history_ == model.history_
    assert json.loads((_version(tmp_path / "m") / "history.json").read_text())["epochs"] == \
        model.history_.epochs


def test_leftovers_are_cleaned_and_errors_leave_the_old_save(model, tmp_path):
    target = tmp_path / "m"
    model.save_pretrained(target)
    (target / ".multirec-tmp-0123456789abcdef").mkdir()
    (target / "version-0123456789abcdef").mkdir()
    (tmp_path / ".m.tmp-1234abcd").mkdir()  # what multirec < 0.2 leaked next to the folder
    (tmp_path / ".m.old-1234abcd").mkdir()
    before = _version(target)
    with pytest.raises(RuntimeError, match="boom"), _files.atomic_directory(
            target, overwrite=True, marker="multirec.MultimodalRecommender"):
        raise RuntimeError("boom")
    assert _version(target) == before
    MultimodalRecommender.from_pretrained(target)
    model.save_pretrained(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["multirec.json", _version(target).name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_9_during_save_keeps_a_loadable_model(model, tmp_path):
    """A child process saves in a loop and is SIGKILLed after a random delay, 8 times."""
    parent = tmp_path / "parent"
    target = parent / "m"
    model.save_pretrained(target)
    expected = _scores(model)
    rng = random.Random(0)
    for _ in range(8):
        pid = os.fork()
        if pid == 0:  # child: save forever (never returns into pytest)
            try:
                while True:
                    model.save_pretrained(target, overwrite=True)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        np.testing.assert_array_equal(_scores(MultimodalRecommender.from_pretrained(target)),
                                      expected)
    model.save_pretrained(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["multirec.json", _version(target).name]
    assert sorted(p.name for p in parent.iterdir()) == ["m"]


# ---------------------------------------------------------------------- crafted folders
@pytest.fixture()
def saved(model, tmp_path):
    """A fresh save at tmp_path/m, and a sentinel folder outside it that must never be read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SENTINEL-CONTENT")
    model.save_pretrained(tmp_path / "m")
    return tmp_path / "m", outside


@pytest.fixture()
def opened(monkeypatch):
    """Every path passed to os.open / open while the test runs."""
    paths: list[str] = []
    real_os_open, real_open = os.open, open

    def os_open(path, *a, **k):
        paths.append(os.path.abspath(path))
        return real_os_open(path, *a, **k)

    def py_open(path, *a, **k):
        if isinstance(path, (str, os.PathLike)):
            paths.append(os.path.abspath(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", py_open)
    return paths


def _refused(root: Path, outside: Path, opened: list[str], match: str, **kw) -> None:
    with pytest.raises(ModelFileError, match=match) as info:
        MultimodalRecommender.from_pretrained(root, **kw)
    assert "SENTINEL" not in str(info.value)
    assert not [p for p in opened if p.startswith(str(outside))], "read outside the model folder"


def test_path_traversal_in_manifest_and_pointer(saved, opened):
    root, outside = saved
    folder = _version(root)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["../../outside/secret.txt"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    _refused(root, outside, opened, r"unknown file\(s\) \['../../outside/secret.txt'\]")
    (root / "multirec.json").write_text(json.dumps(
        {"format": "multirec.MultimodalRecommender", "current": "../outside"}))
    _refused(root, outside, opened, "not a version folder")
    with pytest.raises(ModelFileError, match="outside the model folder"):
        _files.safe_child(root, "../outside/secret.txt")
    with pytest.raises(ModelFileError, match="outside the model folder"):
        _files.safe_child(root, str(outside / "secret.txt"))


def test_emptied_manifest_and_unchecked_config_edit(saved, opened):
    root, outside = saved
    folder = _version(root)
    good = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(json.dumps({"format": "multirec.Manifest", "sha256": {}}))
    _refused(root, outside, opened, r"no checksum for \['config.json'")
    (folder / "manifest.json").write_text(good)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["dim"] = 9
    (folder / "config.json").write_text(json.dumps(config))  # manifest not updated
    _refused(root, outside, opened, r"config.json.*does not match its checksum")


def test_symlinks_are_refused(saved, opened):
    root, outside = saved
    folder = _version(root)
    (outside / "ids.json").write_bytes((folder / "ids.json").read_bytes())
    (folder / "ids.json").unlink()
    (folder / "ids.json").symlink_to(outside / "ids.json")
    _refused(root, outside, opened, "ids.json.*symbolic link")
    # a version folder that is a link to a copy elsewhere
    (folder / "ids.json").unlink()
    (folder / "ids.json").write_bytes((outside / "ids.json").read_bytes())
    copy = outside / "copy"
    folder.rename(copy)
    folder.symlink_to(copy, target_is_directory=True)
    _refused(root, outside, opened, "symbolic link")


def test_cache_and_checkpoint_dirs_are_not_taken_from_the_file(saved, tmp_path):
    root, _ = saved
    cache, ckpt = tmp_path / "cache", tmp_path / "ckpt"
    cache.mkdir()
    ckpt.mkdir()

    def plant(config):
        config["model"].update(cache_dir=str(cache), checkpoint_dir=str(ckpt), checkpoint_every=1)
        return config

    _edit(root, "config.json", plant)
    loaded = MultimodalRecommender.from_pretrained(root)
    assert loaded.cache_dir is None and loaded.train_config.checkpoint_dir is None
    loaded.recommend(["user_0001"], n=3)
    loaded.add_items({"text": {"brand-new": "a red song"}})
    assert list(cache.iterdir()) == [] and list(ckpt.iterdir()) == []
    mine = tmp_path / "my-cache"
    again = MultimodalRecommender.from_pretrained(root, cache_dir=mine)
    assert again.cache_dir == str(mine)


def test_encoder_paths_outside_need_encoder_paths(tmp_path, opened, monkeypatch):
    vocab = tmp_path / "outside" / "vocab"
    vocab.mkdir(parents=True)
    model = _fit({"text": PathHashEncoder(vocab_path=str(vocab))})
    model.save_pretrained(tmp_path / "m")
    config = json.loads((_version(tmp_path / "m") / "config.json").read_text())
    assert config["model"]["encoders"]["text"]["vocab_path"] == str(vocab)
    _refused(tmp_path / "m", vocab, opened,
             r"'text' encoder's vocab_path=.* outside the model folder.*encoder_paths=")
    mine = tmp_path / "my-copy"
    mine.mkdir()
    loaded = MultimodalRecommender.from_pretrained(tmp_path / "m", encoder_paths={"text": mine})
    assert loaded.encoder_configs_["text"]["vocab_path"] == str(mine)
    np.testing.assert_array_equal(_scores(loaded), _scores(model))
    with pytest.raises(ConfigError, match=r"encoder_paths names modalities \['image'\]"):
        MultimodalRecommender.from_pretrained(tmp_path / "m", encoder_paths={"image": mine})
    with pytest.raises(ConfigError, match="nope.*does not exist"):
        MultimodalRecommender.from_pretrained(tmp_path / "m",
                                              encoder_paths={"text": tmp_path / "nope"})
    # a relative path is saved absolute (on load it is not resolved against the working dir)
    monkeypatch.chdir(tmp_path)
    rel = _fit({"text": PathHashEncoder(vocab_path="outside/vocab")})
    rel.save_pretrained(tmp_path / "rel")
    config = json.loads((_version(tmp_path / "rel") / "config.json").read_text())
    assert config["model"]["encoders"]["text"]["vocab_path"] == str(vocab)
    # a path inside the model folder is saved relative to it and found there after a move
    inside = tmp_path / "m2" / "vocab"
    model2 = _fit({"text": PathHashEncoder(vocab_path=str(inside))})
    model2.save_pretrained(tmp_path / "m2")
    inside.mkdir()  # the user's copy of the encoder, kept by multirec, next to the save
    model2.save_pretrained(tmp_path / "m2", overwrite=True)
    config = json.loads((_version(tmp_path / "m2") / "config.json").read_text())
    assert config["model"]["encoders"]["text"]["vocab_path"] == "./vocab"
    (tmp_path / "m2").rename(tmp_path / "moved")
    loaded = MultimodalRecommender.from_pretrained(tmp_path / "moved")
    assert loaded.encoder_configs_["text"]["vocab_path"] == str((tmp_path / "moved" / "vocab").resolve())


@pytest.mark.parametrize("name, change, match", [
    ("model.safetensors", lambda s: {**s, "item_bias.weight": s["item_bias.weight"].index_fill(
        0, torch.tensor([3]), float("nan"))}, r"'item_bias.weight'.*NaN"),
    ("interactions.safetensors", lambda a: {**a, "indptr": a["indptr"].flip(0)}, "row pointers"),
    ("interactions.safetensors", lambda a: {**a, "indices": a["indices"] + 1000},
     r"item indices .* outside \[0, 30\)"),
    ("config.json", lambda c: {**c, "network": {**c["network"], "n_items": 1e12}},
     r"n_items=1000000000000\.0; it must be an integer"),
    ("config.json", lambda c: {**c, "network": {**c["network"], "n_users": -1}}, "n_users=-1"),
    ("config.json", lambda c: {**c, "network": {**c["network"], "n_items": 2**31}},
     "n_items=2147483648"),
    ("config.json", lambda c: {**c, "network": {**c["network"], "content_dims": {
        "text": 64, "image": 16}}, "modalities": ["text", "image"]}, "image"),
    ("config.json", lambda c: {**c, "network": {**c["network"], "content_dims": {"text": 32}}},
     r"dim=64.*content_dims\['text'\]=32"),
    ("config.json", lambda c: {**c, "model": {**c["model"], "encoders": {
        "text": {"name": "no-such-encoder"}}}}, "'no-such-encoder', which is not registered"),
    ("config.json", lambda c: {**c, "surprise": 1}, r"unknown keys \['surprise'\]"),
    ("config.json", lambda c: {**c, "model": {**c["model"], "bogus": 1}}, "bogus"),
    ("config.json", lambda c: {**c, "network": {**c["network"], "fusion": "magic"}}, "magic"),
    ("config.json", lambda c: {**c, "format_version": 1}, "format_version 1"),
    ("ids.json", lambda d: {**d, "items": d["items"][:-1]}, "lists 29 items.*n_items=30"),
    ("ids.json", lambda d: {**d, "items": d["items"][:-1] + d["items"][:1]}, "duplicates"),
    ("item_item.safetensors", lambda a: {}, "item_item=True but item_item.safetensors lacks"),
    ("item_item.safetensors", lambda a: {**a, "weights": a["weights"][:5]},
     r"weights of shape \[5, 30\]"),
    ("item_item.safetensors", lambda a: {**a, "weights": a["weights"].index_fill(
        0, torch.tensor([2]), float("inf"))}, "'weights'.*NaN or inf"),
    ("history.json", lambda h: {**h, "extra": 1}, "history.json.*extra"),
])
def test_edited_files_are_refused(saved, name, change, match):
    root, _ = saved
    _edit(root, name, change)
    with pytest.raises(ModelFileError, match=match):
        MultimodalRecommender.from_pretrained(root)


def test_mismatched_weights_shape_names_the_tensor(saved):
    root, _ = saved
    _edit(root, "model.safetensors", lambda s: {**s, "item_bias.weight": torch.zeros(31, 1)})
    with pytest.raises(ModelFileError, match=r"'item_bias.weight' is torch.float32 \[31, 1\]"):
        MultimodalRecommender.from_pretrained(root)


def test_format_1_folder_is_refused_and_replaced_by_overwrite(model, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("model.safetensors", "interactions.safetensors", "ids.json"):
        (old / name).write_bytes(b"x")
    (old / "config.json").write_text(json.dumps(
        {"format": "multirec.MultimodalRecommender", "format_version": 1, "files": {}}))
    (old / "mine.txt").write_text("keep")
    with pytest.raises(ModelFileError, match=r"format 1 by an older multirec.*format 2"):
        MultimodalRecommender.from_pretrained(old)
    with pytest.raises(ModelFileError, match="older multirec; pass overwrite=True"):
        model.save_pretrained(old)
    model.save_pretrained(old, overwrite=True)
    assert sorted(p.name for p in old.iterdir()) == ["mine.txt", "multirec.json", _version(old).name]
    MultimodalRecommender.from_pretrained(old)


def test_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match="nothing.*not a directory"):
        MultimodalRecommender.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="empty.*not a saved multirec model"):
        MultimodalRecommender.from_pretrained(tmp_path / "empty")


# ---------------------------------------------------------------------- training checkpoints
def test_checkpoints_share_the_crash_safe_layout(tmp_path):
    from multirec.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint

    w = {"w": torch.arange(3.0)}
    best = {"w": torch.arange(3.0)}
    ckpt = Checkpoint(epoch=2, history={"epochs": []}, bad_evals=0, net=w, best=best, last_good=best,
                      optimizer={"state": {}, "param_groups": []}, numpy_rng={},
                      torch_rng=[{"generator": torch.zeros(4, dtype=torch.uint8)}])
    old = tmp_path / "latest"  # a format-1 checkpoint: refused on resume, replaced on save
    old.mkdir()
    (old / "state.json").write_text("{}")
    (old / "tensors.safetensors").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="older multirec.*resume=False"):
        load_checkpoint(tmp_path)
    assert checkpoint_path(tmp_path) is None
    save_checkpoint(tmp_path, ckpt)
    save_checkpoint(tmp_path, ckpt)
    folder = checkpoint_path(tmp_path)
    assert sorted(p.name for p in old.iterdir()) == ["multirec.json", folder.name]
    again = load_checkpoint(tmp_path)
    assert again.epoch == 2 and torch.equal(again.net["w"], w["w"])
    raw = bytearray((folder / "tensors.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (folder / "tensors.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="does not match its checksum.*delete"):
        load_checkpoint(tmp_path)


def test_a_save_from_before_a_new_tensor_loads_with_its_neutral_value(model, saved):
    """Format-2 saves written before `cold_cf_scale` and the popularity prior existed load,
    scoring as a model without them does."""
    from multirec.network import TwoTowerNetwork

    root, _ = saved
    neutral = MultimodalRecommender.from_pretrained(root)  # with those tensors at neutral values
    with torch.no_grad():
        for key, value in TwoTowerNetwork.STATE_DEFAULTS.items():
            getattr(neutral.network, key).fill_(value)
    neutral.scorer_.invalidate()
    new = set(TwoTowerNetwork.STATE_DEFAULTS)
    _edit(root, "model.safetensors", lambda s: {k: v for k, v in s.items() if k not in new})
    loaded = MultimodalRecommender.from_pretrained(root)
    assert float(loaded.network.cold_cf_scale) == 1.0
    assert float(loaded.network.prior_weight) == 0.0
    assert loaded.network.item_prior.shape == (loaded.network.n_items,)
    np.testing.assert_allclose(_scores(loaded), _scores(neutral), rtol=1e-5, atol=1e-6)
    _edit(root, "model.safetensors", lambda s: {**s, "cold_cf_scale": torch.zeros(2)})
    with pytest.raises(ModelFileError, match="'cold_cf_scale' is torch.float32 \\[2\\]"):
        MultimodalRecommender.from_pretrained(root)


def test_a_save_from_before_the_user_carve_loads_with_it_off(model, saved):
    """Configs written before `new_user_valid_users` and the "auto" κ_ii existed load: the
    missing key takes its default (off) and a fixed half-life is kept as a number."""
    root, _ = saved
    before = _scores(MultimodalRecommender.from_pretrained(root))

    def older(config: dict) -> dict:
        model_cfg = {k: v for k, v in config["model"].items() if k != "new_user_valid_users"}
        return {**config, "model": {**model_cfg, "new_user_item_item_halflife": 20.0}}

    _edit(root, "config.json", older)
    loaded = MultimodalRecommender.from_pretrained(root)
    config = loaded.get_config()
    assert config["new_user_valid_users"] == 0.0
    assert config["new_user_item_item_halflife"] == 20.0
    np.testing.assert_allclose(_scores(loaded), before, rtol=1e-6)


def test_a_save_from_before_item_item_dropout_loads_as_plain_ease(model, saved):
    """Saves written before `item_item_dropout` existed have neither the config key nor the
    arrays' "dropout": they load as plain EASE (0), with the same weights and scores."""
    root, _ = saved
    assert model.item_item_ is not None and model.item_item_.dropout == 0.5
    before = _scores(MultimodalRecommender.from_pretrained(root))
    _edit(root, "config.json", lambda c: {**c, "model": {
        k: v for k, v in c["model"].items() if k != "item_item_dropout"}})
    _edit(root, "item_item.safetensors", lambda d: {k: v for k, v in d.items() if k != "dropout"})
    loaded = MultimodalRecommender.from_pretrained(root)
    assert loaded.get_config()["item_item_dropout"] == 0.0 and loaded.item_item_.dropout == 0.0
    np.testing.assert_array_equal(loaded.item_item_.weights, model.item_item_.weights)
    np.testing.assert_allclose(_scores(loaded), before, rtol=1e-6)


@pytest.mark.parametrize("where", ["config.json", "item_item.safetensors"])
def test_an_out_of_range_item_item_dropout_is_refused(saved, where):
    root, _ = saved
    if where == "config.json":
        _edit(root, where, lambda c: {**c, "model": {**c["model"], "item_item_dropout": 1.5}})
    else:
        _edit(root, where, lambda d: {**d, "dropout": torch.tensor([1.5], dtype=torch.float64)})
    with pytest.raises(ModelFileError, match=r"item_item_dropout.*1\.5"):
        MultimodalRecommender.from_pretrained(root)
