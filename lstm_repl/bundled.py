"""Where the files that ship with lstm-repl are: the repository's top-level folders in a checkout
(or an editable install), lstm_repl/_bundled/ in an installed wheel (pyproject.toml maps them)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """checkpoints or corpora: the checkout's folder when there is one, else the wheel's copy.
    (A checkout has pyproject.toml beside the package; site-packages has not.)"""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / name).is_dir():
        return root / name
    return PACKAGE_DIR / "_bundled" / name
