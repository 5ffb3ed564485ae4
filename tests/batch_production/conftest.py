"""A world per test, copied from one session template with Tianjin's staff and people registered.

The services take the time as an argument (``NOW``), so nothing here freezes the clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from world_template import home, make_template  # noqa: F401  (home: fixture)

from batch_world import NOW, OPERATORS, PEOPLE


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory, "batch", seed=11, now=NOW, staff=OPERATORS,
                         people=[("tj", fields) for fields in PEOPLE.values()])
