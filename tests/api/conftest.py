"""A real service for the API's tests: uvicorn on a free localhost port, in a thread of the test.

``live_server`` starts ``sbcard.api`` over a copy of a template world with staff accounts
(``STAFF``: every role in Beijing, a counter and a finance pair in Tianjin) on a ``SimClock``
the test may move (token expiry, lockout), and stops exactly that server at teardown.
``signed_in(code)`` gives an ``httpx.Client`` with a bearer token of that account (its
first password already changed). The subprocess form of ``sbcard serve`` is tested in
``test_api_serve_process.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sbcard.clock import SimClock
from sbcard.services.outlets import staff as accounts
from sbcard.store.world import init_world, open_world
from api_world import FIRST_PASSWORD, STAFF, LiveServer, start_server
from world_template import NOW


@pytest.fixture(scope="session")
def api_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("api-template") / "world"
    init_world(home, SimClock(NOW), rng_seed=1818)
    with open_world(home) as world:
        for code, (name, role, region, outlet) in STAFF.items():
            accounts.add_staff(world.region(code[:2].lower()), code=code, name=name, role=role, region=region,
                               outlet=outlet, password=FIRST_PASSWORD, by="cli", now=NOW)
    return home


@pytest.fixture
def server_starter() -> Callable[..., LiveServer]:
    """``start_server`` itself, for a test that starts and stops several (one process per node); the test stops them."""
    return start_server


@pytest.fixture
def api_home(api_template: Path, tmp_path: Path) -> Path:
    home = tmp_path / "world"
    shutil.copytree(api_template, home)
    return home


@pytest.fixture
def live_server(api_home: Path) -> Iterator[LiveServer]:
    server = start_server(api_home, SimClock(NOW))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def signed_in(live_server: LiveServer) -> Callable[[str], httpx.Client]:
    return live_server.signed_in
