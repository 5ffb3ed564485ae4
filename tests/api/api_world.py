"""The accounts and passwords of the API tests' world (imported by ``conftest.py`` and the tests).

A module of its own, with a name no other folder uses: ``from conftest import …`` would find
whichever folder's ``conftest`` was imported first when the whole suite runs.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import attrs
import httpx
import uvicorn
from argon2 import PasswordHasher, profiles

from sbcard.api.app import create_app
from sbcard.api.config import ServiceConfig
from sbcard.api.peers import PairKeys
from sbcard.clock import SimClock
from sbcard.store.world import NODES, exchange_keys

from sbcard.services.outlets import staff as staff_service
from world_template import COUNTER_OUTLETS

# argon2 at its production cost takes ~0.5 s a hash on the 2-core test machine; the tests sign in
# hundreds of times, so they hash with argon2's cheapest profile (what is tested is the flow, not
# the cost). The subprocess tests of ``sbcard serve`` run the production parameters.
staff_service._HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)

FIRST_PASSWORD = "first-Pass-2025"
PASSWORD = "own-Secret-7788"

# code → (name, staff role, region, outlet)
STAFF: dict[str, tuple[str, str, str, str | None]] = {
    "BJ-ADMIN": ("周敏", "admin", "110000", None),
    "BJ-C1": ("王芳", "counter", "110105", COUNTER_OUTLETS["bj"]),
    "BJ-C2": ("陈刚", "counter", "110105", None),
    "BJ-FM": ("刘洋", "finance_maker", "110000", None),
    "BJ-FC": ("孙丽", "finance_checker", "110000", None),
    "BJ-SUP": ("郑伟", "supervisor", "110000", None),
    "BJ-AUD": ("吴静", "auditor", "110000", None),
    "TJ-C1": ("李娜", "counter", "120103", COUNTER_OUTLETS["tj"]),
    "TJ-FM": ("马超", "finance_maker", "120000", None),
    "TJ-FC": ("何琳", "finance_checker", "120000", None),
    "HE-C1": ("赵磊", "counter", "130102", COUNTER_OUTLETS["he"]),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
                 app=None, port: int | None = None) -> LiveServer:  # type: ignore[no-untyped-def]
    """``app``: an app of the test's own making (``create_app`` plus a route), else the service's; ``port``: a
    given one (a node's process restarted where its peers expect it), else a free one."""
    port = port or free_port()
    config = ServiceConfig(home=home, node=node, clock=clock, peers=peers or {})
    server = uvicorn.Server(uvicorn.Config(app or create_app(config), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"sbcard-test-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(url=f"http://127.0.0.1:{port}", home=home, clock=clock, server=server, thread=thread)


def not_for_node(node: str, directory: str, names: list[str]) -> list[str]:
    """Which of a world home's files a node's own home does not get (``shutil.copytree``'s ``ignore``): the other
    nodes' databases and keys, and the keys of the pairs of nodes it is not an end of (``exchange/<a>-<b>.key``)."""
    others = {f"{other}{suffix}" for other in NODES if other != node for suffix in (".db", ".db-wal", ".db-shm", ".keys")}
    pairs = Path(directory).name == "exchange"
    return [name for name in names if name in others
            or (pairs and name.endswith(".key") and node not in name.removesuffix(".key").split("-"))]


def pair_keys_of(homes: dict[str, Path]) -> PairKeys:
    """Every pair's key, from each node's own home: for a test that signs as any node."""
    return PairKeys({pair: secret for node, home in homes.items() for pair, secret in exchange_keys(home, (node,)).items()})
