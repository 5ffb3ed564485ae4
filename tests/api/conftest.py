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
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import uvicorn

from sbcard.api.app import create_app
from sbcard.api.config import ServiceConfig
from sbcard.clock import SimClock
from sbcard.services.outlets import staff as accounts
from sbcard.store.world import init_world, open_world
from api_world import FIRST_PASSWORD, PASSWORD, STAFF
from world_template import NOW

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def api_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("api-template") / "world"
    init_world(home, SimClock(NOW), rng_seed=1818)
    with open_world(home) as world:
        for code, (name, role, region, outlet) in STAFF.items():
            accounts.add_staff(world.region(code[:2].lower()), code=code, name=name, role=role, region=region,
                               outlet=outlet, password=FIRST_PASSWORD, by="cli", now=NOW)
    return home


@attrs.define
class LiveServer:
    url: str
    home: Path
    clock: SimClock
    server: uvicorn.Server
    thread: threading.Thread
    clients: list[httpx.Client] = attrs.field(factory=list)
    changed: set[str] = attrs.field(factory=set)  # accounts whose first password ``signed_in`` changed

    def client(self, **kwargs) -> httpx.Client:  # type: ignore[no-untyped-def]
        client = httpx.Client(base_url=self.url, timeout=30, **kwargs)
        self.clients.append(client)
        return client

    def sign_in(self, code: str, password: str = PASSWORD, **extra) -> httpx.Response:  # type: ignore[no-untyped-def]
        with httpx.Client(base_url=self.url, timeout=30) as client:
            return client.post("/api/v1/session", json={"operator": code, "password": password, **extra})

    def signed_in(self, code: str) -> httpx.Client:
        """A client with a bearer token of ``code``, whose first password is changed on the way."""
        if code in self.changed:
            answer = self.sign_in(code)
        else:
            answer = self.sign_in(code, FIRST_PASSWORD, new_password=PASSWORD)
            self.changed.add(code)
        assert answer.status_code == 200, answer.text
        return self.client(headers={"Authorization": f"Bearer {answer.json()['token']}"})

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the test server did not stop"


def start_server(home: Path, clock: SimClock, node: str = "all", peers: dict[str, str] | None = None,
                 port: int | None = None) -> LiveServer:
    """A server on ``port`` (a free one when None: a node's process restarted where its peers expect it)."""
    port = port or free_port()
    config = ServiceConfig(home=home, node=node, clock=clock, peers=peers or {})
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"sbcard-test-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(url=f"http://127.0.0.1:{port}", home=home, clock=clock, server=server, thread=thread)


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
