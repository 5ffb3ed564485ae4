"""The clearing tests reuse the transit and medical folders' worlds (their helper modules)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for folder in ("transit", "medical"):
    path = str(_TESTS / folder)
    if path not in sys.path:
        sys.path.append(path)
