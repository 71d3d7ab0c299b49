"""Small blocking file helpers of the process registry (call them in a worker thread)."""

from __future__ import annotations

import os


def file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_range(path: str, offset: int, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(max(0, limit))
    except OSError:
        return b""
