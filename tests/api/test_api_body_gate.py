"""Nobody unauthenticated makes the service read a large body.

Found by the red team: an unsigned ``X-Sbcard-Terminal`` naming another region's terminal passed the terminal gate
of a node's process, which then read the whole body (up to 128 MiB) before answering 421; GET requests were not
gated; and any path took 256 MiB once the client labelled its body multipart (a 20 MiB "form" to the sign-in
was parsed, 422, before any check). Now the large limits belong to two routes only, and the gate answers before a
byte of the body is read. Each request here states a large Content-Length and sends no body: an answer at all
shows the service did not wait for it.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest
from api_world import start_server

from sbcard.clock import SimClock
from world_template import NOW

MIB = 1 << 20


def _ask_unsent(url: str, method: str, path: str, headers: dict[str, str], wait: float = 8.0) -> int | None:
    """The status the server answers to a request whose stated body is never sent; None if it waits for it."""
    where = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {where.netloc}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection((where.hostname, where.port), timeout=wait) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        if headers.get("Transfer-Encoding") == "chunked":
            sock.sendall(b"400\r\n" + b"x" * 0x400 + b"\r\n")  # one chunk, then nothing: the rest never comes
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            return None
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


@pytest.fixture
def bj_process(api_home):  # type: ignore[no-untyped-def]
    """A process serving Beijing's node alone (``sbcard serve --node bj``)."""
    server = start_server(api_home, SimClock(NOW), node="bj")
    try:
        yield server
    finally:
        server.stop()


def test_another_regions_terminal_is_421_before_its_body_is_read(bj_process):
    for method, path in (("POST", "/api/v1/host/uploads"), ("POST", "/api/v1/host/synced"),
                         ("GET", "/api/v1/host/lists")):
        headers = {"X-Sbcard-Terminal": "tj-metro-9999", "Content-Type": "application/json",
                   "Content-Length": str(100 * MIB if path.endswith("uploads") else 1000)}
        assert _ask_unsent(bj_process.url, method, path, headers) == 421, (method, path)
    answer = httpx.post(f"{bj_process.url}/api/v1/host/synced", json={"version": 1},
                        headers={"X-Sbcard-Terminal": "tj-metro-9999"}, timeout=30)
    assert answer.status_code == 421 and answer.json()["error"]["code"] == "node.elsewhere"


def test_a_get_with_a_large_body_is_gated_and_the_content_type_raises_no_limit(live_server):
    url = live_server.url
    multipart = {"Content-Type": "multipart/form-data; boundary=x"}
    # any method is gated on a terminal's path: a large body is 401 unread without a live terminal's signature
    assert _ask_unsent(url, "GET", "/api/v1/host/uploads", {"Content-Length": str(100 * MIB)}) == 401
    assert _ask_unsent(url, "GET", "/api/v1/host/lists", {"Transfer-Encoding": "chunked"}) == 401
    # a path not on the upload list is held to 1 MiB, whatever the body says it is
    assert _ask_unsent(url, "GET", "/api/v1/host/lists", {**multipart, "Content-Length": str(40 * MIB)}) == 413
    assert _ask_unsent(url, "POST", "/api/v1/session", {**multipart, "Content-Length": str(20 * MIB)}) == 413
    assert _ask_unsent(url, "POST", "/api/v1/subsidies/batches/1/approve",
                       {**multipart, "Content-Length": str(2 * MIB)}) == 413
    # the upload routes keep their own limits
    assert _ask_unsent(url, "POST", "/api/v1/subsidies/batches", {**multipart, "Content-Length": str(300 * MIB)}) == 413
    assert _ask_unsent(url, "POST", "/api/v1/host/uploads", {"Content-Length": str(129 * MIB)}) == 413


def test_a_streamed_multipart_body_to_the_sign_in_is_413_and_a_batch_file_may_pass_1_mib(live_server):
    def streamed():  # type: ignore[no-untyped-def]
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="f.csv"\r\n\r\n'
        for _ in range(3):
            yield b"x" * MIB
        yield b"\r\n--x--\r\n"

    answer = httpx.post(f"{live_server.url}/api/v1/session", content=streamed(), timeout=30,
                        headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request.too_large", answer.text
    # a department's file of 2 MiB is taken in by its route, which then asks who is sending it
    answer = httpx.post(f"{live_server.url}/api/v1/subsidies/batches", timeout=30, data={"region": "110000"},
                        files={"file": ("batch.csv", b"x" * (2 * MIB), "text/csv")})
    assert answer.status_code == 401, answer.text
