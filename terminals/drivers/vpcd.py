"""Serve a virtual card to pcscd through vsmartcard-vpcd.

Debian's ``vsmartcard-vpcd`` driver makes pcscd show two readers, "Virtual PCD 00 00"
and "Virtual PCD 00 01", that wait for a card on TCP localhost:35963 and :35964. The
card side (this module) connects as a client; closing the connection removes the card.

Frames both ways are a 2-byte big-endian length and the payload. A 1-byte payload from
the reader is a control byte (0x00 power off, 0x01 power on, 0x02 reset, 0x04 send the
ATR, answered with a length-prefixed ATR); anything longer is a command APDU, answered
with a length-prefixed response APDU.

Latency: vpcd writes the length and the payload of a frame with two separate writes and
does not disable Nagle's algorithm on its side, so its second write waits for our ACK of
the first, and Linux delays that ACK by ~40 ms. ``TCP_NODELAY`` on our socket alone does
not help with that; re-arming ``TCP_QUICKACK`` before every read does (measured here:
~48 ms per APDU without it, ~0.1 ms with it). We set both.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from terminals.emulator.card import CardTorn, VirtualCard

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963  # "Virtual PCD 00 00"; the second reader, "... 00 01", is 35964

POWER_OFF = 0x00
POWER_ON = 0x01
RESET = 0x02
GET_ATR = 0x04

_LEN = struct.Struct(">H")
_POLL_SECONDS = 0.2  # how often a blocked read looks at the stop event
_CONNECT_SECONDS = 5.0  # refused is immediate; a slow accept on a busy machine is not
_SILENT_SECONDS = 3.0  # vpcd speaks at once after accepting; silence this long is odd


class ServedCard(Protocol):
    """What the bridge needs of a card (``terminals.emulator.card.VirtualCard``)."""

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def process(self, apdu: bytes) -> bytes: ...


class _Closed(Exception):
    """The vpcd side closed the connection."""


class _Stopped(Exception):
    """The stop event was set while waiting."""


def _default_loader(path: Path, faults: Any = None) -> ServedCard:
    return VirtualCard.load(path, faults)


def _quickack(sock: socket.socket) -> None:
    if hasattr(socket, "TCP_QUICKACK"):  # Linux only; elsewhere the delay stays
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass


def recv_exactly(
    sock: socket.socket,
    n: int,
    stop: threading.Event | None = None,
    on_idle: Callable[[], None] | None = None,
) -> bytes:
    """Read exactly ``n`` bytes; ``_Closed`` if the peer closes first, ``_Stopped`` on stop.

    The socket must have a timeout (the poll interval for the stop event); ``on_idle``
    is called each time it expires with nothing read.
    """
    buf = bytearray()
    while len(buf) < n:
        if stop is not None and stop.is_set():
            raise _Stopped()
        _quickack(sock)
        try:
            chunk = sock.recv(n - len(buf))
        except TimeoutError:
            if on_idle is not None:
                on_idle()
            continue
        except OSError as e:  # reset, aborted: the reader side is gone
            raise _Closed() from e
        if not chunk:
            raise _Closed()
        buf += chunk
    return bytes(buf)


def send_frame(sock: socket.socket, payload: bytes) -> None:
    try:
        sock.sendall(_LEN.pack(len(payload)) + payload)
    except OSError as e:  # broken pipe, reset: the reader side is gone
        raise _Closed() from e


def _connect(host: str, port: int, stop: threading.Event, log: Callable[[str], None], retry_seconds: float) -> socket.socket:
    """Connect to vpcd, retrying until it accepts (pcscd may start after us)."""
    waiting_logged = False
    while True:
        if stop.is_set():
            raise _Stopped()
        try:
            sock = socket.create_connection((host, port), timeout=_CONNECT_SECONDS)
        except OSError:
            if not waiting_logged:
                log(f"waiting for vpcd on {host}:{port} (is pcscd running?)")
                waiting_logged = True
            stop.wait(retry_seconds)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(_POLL_SECONDS)
        return sock


def _silence_warning(log: Callable[[str], None], host: str, port: int) -> Callable[[], None]:
    """An ``on_idle`` that says once if vpcd has not spoken for a while after connecting.

    vpcd asks for the ATR as soon as it accepts a card; when another card already sits
    in that reader, the kernel completes our connection but vpcd never reads it.
    """
    state = {"idle": 0}

    def on_idle() -> None:
        state["idle"] += 1
        if state["idle"] == int(_SILENT_SECONDS / _POLL_SECONDS):
            log(f"vpcd at {host}:{port} has not spoken for {_SILENT_SECONDS:g} s: "
                "is another card (bridge) already in that reader?")

    return on_idle


def _session(
    sock: socket.socket, card: ServedCard, stop: threading.Event, on_first_idle: Callable[[], None] | None = None
) -> None:
    """Answer vpcd's frames until it closes the connection (or the card tears).

    vpcd polls for the card by asking for its ATR (every 0.4 s while idle, and right
    after connecting, before any power on): the ATR learnt at insertion is answered
    without touching the card, so a poll never resets it.
    """
    atr = card.power_on()  # inserted: learn the ATR; vpcd powers it on/off as it likes
    on_idle = on_first_idle
    while True:
        (n,) = _LEN.unpack(recv_exactly(sock, 2, stop, on_idle))
        on_idle = None
        payload = recv_exactly(sock, n, stop)
        if n == 1:
            ctrl = payload[0]
            if ctrl == POWER_OFF:
                card.power_off()
            elif ctrl == POWER_ON:
                atr = card.power_on()
            elif ctrl == RESET:
                card.power_off()
                atr = card.power_on()
            elif ctrl == GET_ATR:
                send_frame(sock, atr)
            # other control bytes are unknown to vpcd too: ignore them
            continue
        send_frame(sock, card.process(payload))  # CardTorn propagates: the card is out


def serve(
    card_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    stop: threading.Event | None = None,
    log: Callable[[str], None] = print,
    retry_seconds: float = 0.5,
    reinsert_seconds: float = 1.0,
    faults: Any = None,
    loader: Callable[[Path, Any], ServedCard] | None = None,
) -> None:
    """Put the card stored at ``card_path`` into vpcd's reader until stopped.

    The card is loaded fresh from its file each time it is inserted: at start, after a
    torn command (the connection is closed = the card pulled out, then re-inserted) and
    after vpcd closed the connection (pcscd restarted). Returns when ``stop`` is set or
    on KeyboardInterrupt. ``loader(path, faults)`` defaults to ``VirtualCard.load``; a
    card file that cannot be loaded raises before anything connects.

    ``faults`` apply until the card first tears: the re-inserted card has none, so a
    terminal can retry (e.g. personalise again) after a tear.

    A torn card stays out of the reader for ``reinsert_seconds`` before it comes back:
    pcscd polls vpcd every 0.4 s, and a card that is back before pcscd has seen it gone
    leaves pcscd believing the reader is empty (its own power-down of the torn card
    failed) while its poller sees nothing change — the card would never show up again.
    """
    card_path = Path(card_path)
    stop = stop if stop is not None else threading.Event()
    load = loader or _default_loader
    card = load(card_path, faults)  # fail early on a missing or bad file
    torn = (CardTorn,)
    sock: socket.socket | None = None
    try:
        while not stop.is_set():
            if card is None:
                card = load(card_path, faults)
            sock = _connect(host, port, stop, log, retry_seconds)
            log(f"card {card_path} inserted into vpcd at {host}:{port}")
            try:
                _session(sock, card, stop, _silence_warning(log, host, port))
            except _Closed:
                log("vpcd closed the connection (pcscd restarted?); reconnecting")
            except torn as e:
                card = None  # it lost power mid-command: nothing to power off
                faults = None  # a fault fires once: the card tapped again works
                sock.close()
                log(f"card torn ({e}): removed; re-inserting it in {reinsert_seconds:g} s")
                if stop.wait(reinsert_seconds):
                    break
            finally:
                if sock is not None:
                    sock.close()
                sock = None
            card = None  # the next insertion reads the file again
    except (_Stopped, KeyboardInterrupt):
        pass
    finally:
        if sock is not None:
            sock.close()
        if card is not None:
            try:
                card.power_off()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
    log("bridge stopped")
