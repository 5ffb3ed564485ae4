"""A sample of the CLI fuzz campaign (``benchmarks/cli_fuzz.py``): every answer to a malformed value is one line
naming the field (or a JSON error), the documented exit code, nothing written, no traceback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("cli_fuzz", ROOT / "benchmarks" / "cli_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_sample_of_the_cli_fuzz_campaign_finds_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SBCARD_DEBUG", raising=False)
    fuzz = _fuzz_module()
    figures = fuzz.campaign(400, 2026, tmp_path)
    found = {kind: figures["examples"][kind] for kind in fuzz.KINDS if figures[kind]}
    assert figures["tried"] == 400 and figures["clean"] == 400, found
