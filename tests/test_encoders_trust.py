"""Loading a checkpoint never runs code shipped with it (`auto_map`) and never prompts."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from encoders import EncoderConfigError, get_encoder

transformers = pytest.importorskip("transformers")

EVIL = """
from pathlib import Path
Path({sentinel!r}).write_text("remote code ran")
"""


def _plant_code(folder: Path, sentinel: Path) -> None:
    for module in ("configuration_evil", "modeling_evil", "tokenization_evil",
                   "feature_extraction_evil"):
        (folder / f"{module}.py").write_text(EVIL.format(sentinel=str(sentinel)))


def _evil_folder(tmp_path: Path) -> Path:
    """A checkpoint of an unknown model type whose classes live only in its own .py files."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil-remote-model",
        "architectures": ["EvilModel"],
        "hidden_size": 8,
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                     "AutoModel": "modeling_evil.EvilModel",
                     "AutoTokenizer": ["tokenization_evil.EvilTokenizer", None],
                     "AutoFeatureExtractor": "feature_extraction_evil.EvilExtractor"},
    }))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "auto_map": {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "auto_map": {"AutoFeatureExtractor": "feature_extraction_evil.EvilExtractor"}}))
    _plant_code(folder, tmp_path / "sentinel")
    return folder


@pytest.fixture
def no_prompt(monkeypatch):
    """Records every input() call (transformers turns a raising input() into a ValueError, so
    the test asserts on the record) and gives an empty stdin."""
    calls: list[tuple] = []

    def record(*args, **kwargs):
        calls.append(args)
        raise EOFError

    monkeypatch.setattr(builtins, "input", record)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    yield calls
    assert calls == [], "something asked for interactive input"


@pytest.mark.parametrize("modality", ["text", "audio"])
def test_unknown_model_with_remote_code_is_refused(modality, tmp_path, no_prompt):
    folder = _evil_folder(tmp_path)
    with pytest.raises(EncoderConfigError, match="evil") as info:
        get_encoder(modality, model_name_or_path=str(folder), device="cpu")
    assert str(folder) in str(info.value)
    assert not (tmp_path / "sentinel").exists()
    assert sys.stdin.tell() == 0  # nothing was read


def test_known_model_type_ignores_auto_map(tiny_bert_dir, tmp_path, no_prompt):
    """A BERT checkpoint that also ships custom code loads the built-in class, not the code."""
    folder = tmp_path / "bert-with-code"
    shutil.copytree(tiny_bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel",
                          "AutoConfig": "configuration_evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))
    _plant_code(folder, tmp_path / "sentinel")
    enc = get_encoder("text", model_name_or_path=str(folder), device="cpu")
    assert type(enc.model).__name__ == "BertModel"
    assert enc.encode(["hello"]).shape == (1, 32)
    assert not (tmp_path / "sentinel").exists()


@pytest.mark.parametrize("answer", [None, "y\n"])
@pytest.mark.parametrize("modality", ["text", "audio"])
def test_subprocess_never_prompts(modality, answer, tmp_path):
    """stdin closed (DEVNULL): a clear error, no hang; stdin answering "y" to a prompt: still
    refused, because nothing asks."""
    folder = _evil_folder(tmp_path)
    code = ("import encoders, sys\n"
            "try:\n"
            f"    encoders.get_encoder({modality!r}, model_name_or_path=sys.argv[1], device='cpu')\n"
            "except encoders.EncoderConfigError as exc:\n"
            "    print('REFUSED', exc); sys.exit(3)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    stdin = {"stdin": subprocess.DEVNULL} if answer is None else {"input": answer}
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], **stdin, capture_output=True,
                          text=True, timeout=120, env=env, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "REFUSED" in proc.stdout and "trust_remote_code" in proc.stdout
    assert "Do you wish to run the custom code" not in proc.stdout + proc.stderr
    assert not (tmp_path / "sentinel").exists()


def test_open_clip_pretrained_must_be_a_tag_or_a_file():
    pytest.importorskip("open_clip")
    with pytest.raises(EncoderConfigError, match="https://example.com/w.pt"):
        get_encoder("image", model_name="ViT-B-32", pretrained="https://example.com/w.pt",
                    device="cpu")
