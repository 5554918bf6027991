"""What a wheel carries: every subpackage, the bundled models and the corpus catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def _setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]


def test_every_subpackage_is_listed_for_the_wheel():
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lstm_repl").rglob("__init__.py")}
    assert on_disk <= set(_setuptools_config()["packages"])


def test_the_bundled_folders_are_mapped_into_the_package_with_their_files():
    config = _setuptools_config()
    for name in ("checkpoints", "corpora"):
        package = f"lstm_repl._bundled.{name}"
        assert package in config["packages"] and config["package-dir"][package] == name
        patterns = config["package-data"][package]
        unmatched = [pattern for pattern in patterns if not any(p.is_file() for p in (ROOT / name).glob(pattern))]
        assert patterns and not unmatched, f"{name}: no file matches {unmatched}"
    shipped = {p.parent.name for p in (ROOT / "checkpoints").glob("*/model.safetensors")}
    assert shipped == {p.parent.name for p in (ROOT / "checkpoints").glob("*/config.json")}
