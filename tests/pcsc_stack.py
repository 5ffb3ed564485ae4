"""Start and stop the real PC/SC stack for tests and benchmarks: pcscd + a vpcd bridge.

Used by ``tests/conftest.py`` (fixtures ``pcsc_stack`` and ``served_card``) and
by ``benchmarks/pcsc_latency.py``. Everything here stops only what it started, by PID.

- ``PcscStack.start()`` reuses a pcscd that answers (a system service, socket
  activation, a developer's own) and otherwise runs ``pcscd --foreground`` itself; it
  then waits until pcscd shows the reader "Virtual PCD 00 00" (vsmartcard-vpcd).
- ``Bridge.start(card)`` runs ``sbcard reader serve --card FILE`` (as ``python -m sbcard``) and waits
  until pcscd sees a card in that reader; ``stop()`` waits until it sees none.

vpcd's reader takes one card at a time on one TCP port, so a bridge holds an exclusive
lock file (``$TMPDIR/sbcard-vpcd-35963.lock``) while it runs: two test sessions on one
machine take turns instead of failing, and a session stopping the pcscd it started
waits for the other's bridge first.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
VPCD_READER = "Virtual PCD 00 00"
VPCD_PORT = 35963
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
START_TIMEOUT = 20.0  # generous: a loaded 2-core CI machine starts Python slowly
STOP_TIMEOUT = 5.0


class StackUnavailable(Exception):
    """The PC/SC stack cannot run here; the message says what is missing."""


def missing_prerequisites() -> str | None:
    """Why the stack cannot run on this machine, or None if it can."""
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        return "pcscd is not installed (apt-get install pcscd)"
    if not VPCD_CONF.exists():
        return f"vsmartcard-vpcd is not installed ({VPCD_CONF} missing; apt-get install vsmartcard-vpcd)"
    try:
        import smartcard.scard  # noqa: F401
    except ImportError as e:
        return f"pyscard is not importable: {e}"
    return None


def _pcscd_binary() -> str:
    return shutil.which("pcscd") or "/usr/sbin/pcscd"


def reader_names() -> list[str] | None:
    """The PC/SC readers, or None when no pcscd answers."""
    from smartcard.System import readers

    try:
        return [str(r) for r in readers()]
    except Exception:  # noqa: BLE001 - EstablishContextException, CardServiceNotFound…
        return None


def card_state(reader: str) -> tuple[bool, bytes | None]:
    """(card present, ATR) of a reader, without connecting; (False, None) if unknown."""
    from smartcard import scard

    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return False, None
    try:
        hresult, states = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hresult != scard.SCARD_S_SUCCESS:
            return False, None
        _, event, atr = states[0]
        present = bool(event & scard.SCARD_STATE_PRESENT) and not event & scard.SCARD_STATE_MUTE
        return present, bytes(atr) if present else None
    finally:
        scard.SCardReleaseContext(ctx)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _stop_process(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process we started (by its PID), SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class PortLock:
    """An exclusive lock on vpcd's port, shared between processes through a file."""

    def __init__(self, port: int) -> None:
        self.path = Path(tempfile.gettempdir()) / f"sbcard-vpcd-{port}.lock"
        self._fh: IO[str] | None = None

    def acquire(self, timeout: float) -> bool:
        fh = open(self.path, "a")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fh = fh
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    return False
                time.sleep(0.05)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class PcscStack:
    """pcscd with vpcd's readers; ``proc`` is set only if this object started pcscd."""

    def __init__(self, proc: subprocess.Popen[Any] | None, log_path: Path | None) -> None:
        self.proc = proc
        self.log_path = log_path
        self.reader = VPCD_READER
        self.port = VPCD_PORT

    @property
    def started_here(self) -> bool:
        return self.proc is not None

    @classmethod
    def start(cls, log_dir: Path, timeout: float = START_TIMEOUT) -> "PcscStack":
        why = missing_prerequisites()
        if why:
            raise StackUnavailable(why)
        names = reader_names()
        if names is not None:  # a pcscd answers: use it as it is
            if VPCD_READER not in names:
                raise StackUnavailable(
                    f'the running pcscd has no reader "{VPCD_READER}" (readers: {names}); '
                    "restart it after installing vsmartcard-vpcd"
                )
            return cls(None, None)
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "pcscd.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [_pcscd_binary(), "--foreground"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        stack = cls(proc, log_path)
        ok = wait_until(lambda: proc.poll() is not None or VPCD_READER in (reader_names() or []), timeout)
        if proc.poll() is not None or not ok:
            stack.stop()
            raise StackUnavailable(
                f'pcscd did not show "{VPCD_READER}" within {timeout:.0f} s '
                f"(exit code {proc.returncode}); its log:\n{_tail(log_path)}"
            )
        return stack

    def stop(self) -> None:
        """Stop pcscd if this object started it (after any bridge on the port is gone)."""
        if self.proc is None:
            return
        lock = PortLock(self.port)
        got = lock.acquire(timeout=30.0)  # let another session's bridge finish
        try:
            _stop_process(self.proc)
        finally:
            if got:
                lock.release()
            self.proc = None


class Bridge:
    """``sbcard reader serve`` serving one card file into vpcd's reader."""

    def __init__(self, proc: subprocess.Popen[Any], lock: PortLock, reader: str, log_path: Path, card: Path) -> None:
        self.proc = proc
        self._lock = lock
        self.reader = reader
        self.log_path = log_path
        self.card = card

    @property
    def atr(self) -> bytes | None:
        return card_state(self.reader)[1]

    @classmethod
    def start(
        cls,
        card: Path,
        log_dir: Path,
        *,
        reader: str = VPCD_READER,
        port: int = VPCD_PORT,
        extra_args: tuple[str, ...] = (),
        timeout: float = START_TIMEOUT,
    ) -> "Bridge":
        lock = PortLock(port)
        if not lock.acquire(timeout=60.0):
            raise StackUnavailable(f"another test session keeps {lock.path} locked (a bridge on port {port})")
        try:
            if card_state(reader)[0]:
                raise StackUnavailable(
                    f'"{reader}" already has a card: another bridge is serving port {port} '
                    "(stop that `sbcard reader serve`)"
                )
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / f"bridge-{card.stem}-{os.getpid()}-{time.monotonic_ns()}.log"
            cmd = [sys.executable, "-m", "sbcard", "reader", "serve", "--card", str(card), "--port", str(port), *extra_args]
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            bridge = cls(proc, lock, reader, log_path, card)
        except BaseException:
            lock.release()
            raise
        ok = wait_until(lambda: proc.poll() is not None or card_state(reader)[0], timeout)
        if proc.poll() is not None or not ok:
            bridge.stop()
            raise StackUnavailable(
                f'no card appeared in "{reader}" within {timeout:.0f} s (bridge exit code {proc.returncode}); '
                f"its log:\n{_tail(log_path)}"
            )
        return bridge

    def stop(self) -> None:
        """Stop the bridge (by PID) and wait until the reader shows no card."""
        try:
            _stop_process(self.proc)
            wait_until(lambda: not card_state(self.reader)[0], STOP_TIMEOUT)
        finally:
            self._lock.release()

    def log(self) -> str:
        return _tail(self.log_path, 50)


@contextmanager
def serve_in_thread(
    card: Path,
    loader: Callable[[Path, Any], Any],
    *,
    reader: str = VPCD_READER,
    port: int = VPCD_PORT,
    timeout: float = START_TIMEOUT,
) -> Iterator[list[str]]:
    """Serve a card made by ``loader`` (e.g. a fake card) from a thread of this process.

    Yields the bridge's log lines; on exit stops it and waits until the reader is empty.
    """
    from terminals.drivers import vpcd

    lock = PortLock(port)
    if not lock.acquire(timeout=60.0):
        raise StackUnavailable(f"another test session keeps {lock.path} locked (a bridge on port {port})")
    stop = threading.Event()
    lines: list[str] = []
    thread = threading.Thread(
        target=vpcd.serve,
        args=(card, "127.0.0.1", port),
        kwargs={"stop": stop, "log": lines.append, "loader": loader, "retry_seconds": 0.1},
        daemon=True,
    )
    try:
        if card_state(reader)[0]:
            raise StackUnavailable(f'"{reader}" already has a card: another bridge is serving port {port}')
        thread.start()
        if not wait_until(lambda: card_state(reader)[0], timeout):
            raise StackUnavailable(f'no card appeared in "{reader}" within {timeout:.0f} s; bridge log: {lines}')
        yield lines
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(STOP_TIMEOUT)
        wait_until(lambda: not card_state(reader)[0], STOP_TIMEOUT)
        lock.release()
