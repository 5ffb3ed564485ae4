from __future__ import annotations

from pathlib import Path

import pytest
from checks_world import ChecksWorld, build, copy_world


@pytest.fixture(scope="session")
def checks_template(tmp_path_factory: pytest.TempPathFactory) -> ChecksWorld:
    return build(tmp_path_factory)


@pytest.fixture
def checks(checks_template: ChecksWorld, tmp_path: Path) -> ChecksWorld:
    """A fresh copy of the checks world for one test."""
    return copy_world(checks_template, tmp_path)
