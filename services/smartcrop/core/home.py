"""Where smartcrop keeps what it makes once and reuses: exported models, the local stack's jars, binaries and data."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """``SMARTCROP_HOME``, else ``$XDG_CACHE_HOME/smartcrop`` (``~/.cache/smartcrop``): outside any checkout."""
    base = os.environ.get("SMARTCROP_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "smartcrop")
    return Path(base)
