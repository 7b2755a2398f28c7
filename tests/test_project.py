"""Project-level promises: README commands are what CI runs; packaging metadata is sane."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md must start with a ```bash block of set-up and test commands"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_commands():
    setup, tests = readme_commands()[:2]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert setup in ci and tests in ci
    assert ci.index(setup) < ci.index(tests)
    assert "pip install" in setup and "pytest" in tests


def test_ci_treats_no_tests_as_failure():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert '"$status" -eq 5' in ci


def test_setup_cfg_declares_both_packages_and_extras():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    include = cfg["options.packages.find"]["include"].split()
    assert {"encoders", "multirec"} <= set(include)
    extras = set(cfg["options.extras_require"])
    assert {"text", "image", "audio", "ann", "dev", "all"} <= extras
    assert "lightfm-next" in cfg["options"]["install_requires"]
    assert "multirec = multirec.cli:main" in cfg["options.entry_points"]["console_scripts"]


def test_constraints_pin_the_torch_stack_together():
    pins = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["torchaudio"] == "2.11.0"


def test_readme_quickstart_runs_as_written(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README-quickstart", "exec"), namespace)  # noqa: S102
    from multirec.io import read_config

    assert read_config(tmp_path / "my-model")["format"] == "multirec.MultimodalRecommender"
    ids, _ = namespace["ids"], namespace["scores"]
    assert ids.shape == (2, 5)


def test_torch_threads_restores_the_setting():
    import torch

    from multirec.utils import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"), torch_threads(0):
        pass
