"""The vpcd bridge's frame protocol, against a fake vpcd listening on an ephemeral port."""

from __future__ import annotations

import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from drivers_fakes import FAKE_ATR, SELECT_SSSE

from terminals.drivers import vpcd

TIMEOUT = 5.0


class FakeVpcd:
    """The reader side of vsmartcard-vpcd: listens, accepts one card at a time."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(1)
        self.server.settimeout(TIMEOUT)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        conn, _ = self.server.accept()
        conn.settimeout(TIMEOUT)
        self.conn = conn
        return conn

    def _recv(self, n: int) -> bytes:
        assert self.conn is not None
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise EOFError("card side closed")
            buf += chunk
        return buf

    def send(self, payload: bytes, *, split: bool = False) -> None:
        """Send one frame; ``split`` writes length and payload separately, as vpcd does."""
        assert self.conn is not None
        head = struct.pack(">H", len(payload))
        if split:
            self.conn.sendall(head)
            self.conn.sendall(payload)
        else:
            self.conn.sendall(head + payload)

    def receive(self) -> bytes:
        (n,) = struct.unpack(">H", self._recv(2))
        return self._recv(n)

    def exchange(self, payload: bytes, *, split: bool = False) -> bytes:
        self.send(payload, split=split)
        return self.receive()

    def closed_by_card(self) -> bool:
        assert self.conn is not None
        try:
            return self.conn.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.server.close()


class Served:
    """``vpcd.serve`` in a thread; ``stop()`` sets the event and joins."""

    def __init__(self, card_path: Path, port: int, loader, **kw) -> None:
        self.stop_event = threading.Event()
        self.lines: list[str] = []
        self.error: BaseException | None = None

        def run() -> None:
            try:
                vpcd.serve(card_path, "127.0.0.1", port, stop=self.stop_event, log=self.lines.append, loader=loader, **kw)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self) -> float:
        t = time.monotonic()
        self.stop_event.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "serve() did not stop"
        assert self.error is None, self.error
        return time.monotonic() - t


@pytest.fixture
def fake_vpcd():
    v = FakeVpcd()
    yield v
    v.close()


@pytest.fixture
def card_file(tmp_path: Path) -> Path:
    p = tmp_path / "card.bin"
    p.write_bytes(b"fake")
    return p


@pytest.fixture
def served(card_file, fake_vpcd, fake_loader):
    running: list[Served] = []

    def start(**kw) -> Served:
        kw.setdefault("reinsert_seconds", 0.05)
        s = Served(card_file, fake_vpcd.port, fake_loader, retry_seconds=0.05, **kw)
        running.append(s)
        return s

    yield start
    for s in running:
        s.stop()


def test_power_atr_apdu_power_off(served, fake_vpcd, fake_loader):
    s = served()
    fake_vpcd.accept()
    # vpcd asks for the ATR before powering the card on
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR
    fake_vpcd.send(bytes([vpcd.POWER_ON]))
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR
    assert fake_vpcd.exchange(SELECT_SSSE) == b"\x90\x00"
    assert fake_vpcd.exchange(bytes.fromhex("0001000003010203")) == bytes.fromhex("0102039000")
    fake_vpcd.send(bytes([vpcd.RESET]))
    fake_vpcd.send(bytes([vpcd.POWER_OFF]))
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR  # answers even when off
    assert len(fake_loader.cards) == 1
    assert fake_loader.cards[0].log == [
        "on", "on", SELECT_SSSE.hex(), "0001000003010203", "off", "on", "off",
    ]
    assert any("inserted" in line for line in s.lines)


def test_short_apdus_get_a_status_word_not_a_crash(served, fake_vpcd):
    served()
    fake_vpcd.accept()
    fake_vpcd.send(bytes([vpcd.POWER_ON]))
    assert fake_vpcd.exchange(b"\x00\xa4") == b"\x67\x00"
    assert fake_vpcd.exchange(b"") == b"\x67\x00"
    assert fake_vpcd.exchange(SELECT_SSSE) == b"\x90\x00"


def test_tcp_nodelay_is_set(served, fake_vpcd, monkeypatch):
    made: list[socket.socket] = []
    real = socket.create_connection

    def spy(*a, **kw):
        sock = real(*a, **kw)
        made.append(sock)
        return sock

    monkeypatch.setattr(vpcd.socket, "create_connection", spy)
    served()
    fake_vpcd.accept()
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR
    assert made and made[-1].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux only")
def test_no_delayed_ack_stall_when_vpcd_splits_its_frames(served, fake_vpcd):
    """vpcd writes length and payload separately with Nagle on: without quick ACKs each
    APDU waits ~40 ms for the card side's delayed ACK."""
    served()
    fake_vpcd.accept()
    fake_vpcd.send(bytes([vpcd.POWER_ON]))
    times = []
    for _ in range(30):
        t = time.perf_counter()
        assert fake_vpcd.exchange(SELECT_SSSE, split=True) == b"\x90\x00"
        times.append(time.perf_counter() - t)
    assert statistics.median(times) < 0.010, f"median {statistics.median(times) * 1e3:.1f} ms"


def test_reconnects_with_a_fresh_card_when_vpcd_closes(served, fake_vpcd, fake_loader):
    s = served()
    fake_vpcd.accept()
    fake_vpcd.send(bytes([vpcd.POWER_ON]))
    assert fake_vpcd.exchange(SELECT_SSSE) == b"\x90\x00"
    fake_vpcd.drop()  # pcscd restarted
    fake_vpcd.accept()
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR
    assert fake_vpcd.exchange(SELECT_SSSE) == b"\x90\x00"
    assert len(fake_loader.cards) >= 2
    assert fake_loader.cards[-1] is not fake_loader.cards[0]
    assert any("vpcd closed the connection" in line for line in s.lines), s.lines


def test_torn_card_is_removed_then_reinserted(served, fake_vpcd, fake_loader):
    pytest.importorskip("terminals.emulator.card", reason="the emulated card (CardTorn) is not there yet")
    fake_loader.tear_on = 0x54
    faults = object()
    s = served(faults=faults)
    fake_vpcd.accept()
    fake_vpcd.send(bytes([vpcd.POWER_ON]))
    fake_vpcd.send(bytes.fromhex("805401000F" + "00" * 15 + "08"))
    assert fake_vpcd.closed_by_card()  # the card left the reader without answering
    fake_vpcd.drop()
    fake_loader.tear_on = None
    fake_vpcd.accept()  # and came back, loaded fresh
    assert fake_vpcd.exchange(SELECT_SSSE) == b"\x90\x00"
    assert len(fake_loader.cards) == 2
    assert fake_loader.cards[0].faults is faults
    assert fake_loader.cards[1].faults is None  # a fault fires once
    assert any("torn" in line for line in s.lines)


def test_waits_for_vpcd_and_says_so_once(card_file, fake_loader):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    s = Served(card_file, port, fake_loader, retry_seconds=0.02)
    try:
        time.sleep(0.3)  # several refused attempts
        assert s.lines == [f"waiting for vpcd on 127.0.0.1:{port} (is pcscd running?)"]
        v = FakeVpcd(port)
        try:
            v.accept()
            assert v.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR
        finally:
            v.close()
    finally:
        s.stop()


def test_stops_promptly_while_waiting_and_while_connected(card_file, fake_loader, fake_vpcd):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
    probe.close()
    waiting = Served(card_file, free_port, fake_loader, retry_seconds=0.05)
    time.sleep(0.1)
    assert waiting.stop() < 1.0

    connected = Served(card_file, fake_vpcd.port, fake_loader, retry_seconds=0.05)
    fake_vpcd.accept()
    fake_vpcd.send(bytes([vpcd.POWER_ON]))
    assert fake_vpcd.exchange(SELECT_SSSE) == b"\x90\x00"
    assert connected.stop() < 1.0
    assert fake_vpcd.closed_by_card()  # stopping removes the card
    assert fake_loader.cards[-1].log[-1] == "off"
    assert connected.lines[-1] == "bridge stopped"


def test_missing_card_file_fails_before_connecting(tmp_path, fake_loader, fake_vpcd):
    with pytest.raises(FileNotFoundError):
        vpcd.serve(tmp_path / "nope.card", "127.0.0.1", fake_vpcd.port, loader=fake_loader, log=lambda _: None)
    fake_vpcd.server.settimeout(0.2)
    with pytest.raises(TimeoutError):
        fake_vpcd.server.accept()


def test_keyboard_interrupt_stops_cleanly(card_file, fake_vpcd):
    class Interrupting:
        def __init__(self) -> None:
            self.log: list[str] = []

        def power_on(self) -> bytes:
            return FAKE_ATR

        def power_off(self) -> None:
            self.log.append("off")

        def process(self, apdu: bytes) -> bytes:
            raise KeyboardInterrupt

    card = Interrupting()
    lines: list[str] = []
    t = threading.Thread(
        target=vpcd.serve,
        args=(card_file, "127.0.0.1", fake_vpcd.port),
        kwargs={"log": lines.append, "loader": lambda p, f: card},
        daemon=True,
    )
    t.start()
    fake_vpcd.accept()
    fake_vpcd.send(SELECT_SSSE)
    t.join(TIMEOUT)
    assert not t.is_alive()
    assert card.log == ["off"] and lines[-1] == "bridge stopped"


def test_reader_serve_refuses_a_missing_card(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sbcard", "reader", "serve", "--card", str(tmp_path / "nope.card"), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --card:")
    assert "Traceback" not in proc.stderr


def test_says_so_when_vpcd_accepts_but_never_speaks(served, fake_vpcd, monkeypatch):
    """What happens when another bridge already has its card in that reader."""
    monkeypatch.setattr(vpcd, "_SILENT_SECONDS", 0.4)
    s = served()
    fake_vpcd.accept()
    deadline = time.monotonic() + TIMEOUT
    while not any("has not spoken" in line for line in s.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum("is another card (bridge) already in that reader?" in line for line in s.lines) == 1
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR  # and it still works


def test_reader_side_reset_while_answering_is_a_reconnect(served, fake_vpcd, fake_loader):
    s = served()
    conn = fake_vpcd.accept()
    # wait until the card side has seen its connection complete (else the reset races it)
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    fake_vpcd.drop()  # RST instead of FIN
    fake_vpcd.accept()
    assert fake_vpcd.exchange(bytes([vpcd.GET_ATR])) == FAKE_ATR
    assert any("vpcd closed the connection" in line for line in s.lines), s.lines
