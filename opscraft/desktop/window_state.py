"""The desktop window's size, remembered between launches in `<data dir>/desktop-window.json`."""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE_NAME = "desktop-window.json"
DEFAULT_SIZE = (1280, 820)
MIN_SIZE = (480, 360)
MAX_SIZE = (16384, 16384)


def _clamp(width: int, height: int) -> tuple[int, int]:
    return (
        max(MIN_SIZE[0], min(MAX_SIZE[0], int(width))),
        max(MIN_SIZE[1], min(MAX_SIZE[1], int(height))),
    )


def load(data_dir: Path) -> tuple[int, int]:
    """The last saved (width, height) in pixels, clamped to sane bounds; DEFAULT_SIZE when there
    is none or the file is unreadable."""
    try:
        saved = json.loads((data_dir / FILE_NAME).read_text())
        return _clamp(saved["width"], saved["height"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_SIZE


def save(data_dir: Path, width: int, height: int) -> None:
    """Store (width, height) in pixels, atomically (a crash leaves the old file or the new one)."""
    width, height = _clamp(width, height)
    path = data_dir / FILE_NAME
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps({"width": width, "height": height}))
    os.replace(staged, path)
