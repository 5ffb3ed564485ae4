"""A copy of ``fixtures/`` a subsidy test may break, and what loading a broken one raises.

Import the fixture into a test module: ``from subsidy_fixture_copy import fixtures  # noqa: F401``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sbcard.reference import subsidies as subsidy_reference
from sbcard.domain.errors import SbcardError
from sbcard.reference import fixtures_dir, load_sources


def _clear_caches() -> None:
    subsidy_reference.catalogue.cache_clear()
    subsidy_reference.generate_rules.cache_clear()
    load_sources.cache_clear()


@pytest.fixture
def fixtures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of fixtures/ the test may edit, read instead of the real one."""
    copy = tmp_path / "fixtures"
    shutil.copytree(fixtures_dir(), copy)
    monkeypatch.setenv("SBCARD_FIXTURES", str(copy))
    _clear_caches()
    yield copy
    _clear_caches()


def broken(fixtures: Path, file: str, old: str, new: str) -> SbcardError:
    """Replace ``old`` by ``new`` in ``fixtures/subsidies/<file>`` and read the catalogue and rules:
    the error they raise (a broken fixture is an internal error, exit 3)."""
    path = fixtures / "subsidies" / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(SbcardError) as raised:
        subsidy_reference.catalogue()
        subsidy_reference.generate_rules()
    assert raised.value.code == "fixture.invalid" and raised.value.exit_code == 3
    return raised.value
