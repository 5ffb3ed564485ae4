"""The card file: the chip's EEPROM with two banks, so that a save is one write and no directory operation.

The card file (``world/cards/<card number>.card``) holds the image's bytes
(``image_codec``) in two banks, as cards do it::

    0      file header (16 bytes): magic "SBCARDVC", format version (u16) = 1,
           reserved (u16) = 0, bank size (u32) = 32768
    4096   bank A: sequence (u64) | length (u32) | CRC-32 (u32) | image (length bytes)
    4096 + bank size
           bank B: the same

Integers are big-endian; the CRC-32 covers sequence, length and image. A save writes the
whole image into the bank that does *not* hold the current one, sequence + 1, with one
``os.pwrite`` on a descriptor the card keeps open (``CardFile``). Loading takes the
intact bank with the higher sequence; a bank torn by a process killed mid-write (short,
checksum wrong) is ignored, so the file yields the old image or the new one, never half
of each. There is no ``fsync`` by default: the file stands for the chip's EEPROM, and
what we guard against is the *process* dying (a killed simulator, a torn card) — after
``pwrite`` the image is in the kernel and survives that. Pass ``durable=True`` to survive
a machine crash as well (``fdatasync`` after each write; no directory entry changes).

``read_state(path)`` (or ``python -m terminals.emulator.card_file FILE.card``) shows the
current image. A card file from before the banks (the image alone) is still read, and
rewritten in the two-bank format when a card opens it to write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

from terminals.emulator.image import CardState
from terminals.emulator.image_codec import dumps, loads

CARD_FILE_SUFFIX = ".card"  # a virtual card's file: world/cards/<card number>.card

MAGIC = b"SBCARDVC"
FILE_VERSION = 1
BANK_SIZE = 32 * 1024  # bytes per bank, its 16-byte header included; written in the file header
BANK_A = 4096  # bank A's offset: banks are page-aligned and share no page with the header
_FILE_HEADER = struct.Struct(">8sHHI")  # magic, file format version, reserved (0), bank size
_BANK_HEADER = struct.Struct(">QII")  # sequence, image length, CRC-32 of sequence ‖ length ‖ image
_SEQ_LEN = struct.Struct(">QI")
_MIN_BANK, _MAX_BANK = 4096, 1 << 24
_BANK_NAMES = "AB"


class CardImageTooLarge(ValueError):
    """The serialised image does not fit an EEPROM bank (the card's memory is full)."""


def _file_header(bank_size: int = BANK_SIZE) -> bytes:
    return _FILE_HEADER.pack(MAGIC, FILE_VERSION, 0, bank_size)


def _bank_record(seq: int, image: bytes) -> bytes:
    """What one save writes into a bank: its header, then the image."""
    head = _SEQ_LEN.pack(seq, len(image))
    return head + zlib.crc32(image, zlib.crc32(head)).to_bytes(4, "big") + image


def _bank_offset(bank: int, bank_size: int) -> int:
    return BANK_A + bank * bank_size


_CHUNK = 4096  # read with a bank's header: a card image is ~2 KB, so one pread most often takes it all


def _bank_head(fd: int, bank: int, bank_size: int, chunk: bytes | None = None) -> tuple[int, int, int, bytes] | str:
    """``(sequence, length, CRC, what was read of the image)`` from a bank's header, else why it is unusable.

    ``chunk``: the bank's first bytes, when the caller has read them already.
    """
    if chunk is None:
        chunk = os.pread(fd, _CHUNK, _bank_offset(bank, bank_size))
    head = chunk[: _BANK_HEADER.size]
    if not head.strip(b"\0"):
        return "empty"
    if len(head) < _BANK_HEADER.size:
        return "torn (short header)"
    seq, length, crc = _BANK_HEADER.unpack(head)
    if length > bank_size - _BANK_HEADER.size:
        return f"torn (length {length} exceeds the bank)"
    return seq, length, crc, chunk[_BANK_HEADER.size : _BANK_HEADER.size + length]


def _bank_image(fd: int, bank: int, bank_size: int, head: tuple[int, int, int, bytes]) -> bytes | str:
    """The bank's image if it is intact (all there, checksum right), else why not."""
    seq, length, crc, image = head
    if len(image) < length and len(image) == _CHUNK - _BANK_HEADER.size:  # a large image: read the rest
        image += os.pread(fd, length - len(image), _bank_offset(bank, bank_size) + _CHUNK)
    if len(image) < length:
        return f"torn (short: {len(image)} of {length} bytes)"
    if zlib.crc32(image, zlib.crc32(_SEQ_LEN.pack(seq, length))) != crc:
        return "torn (checksum mismatch)"
    return image


def _scan(fd: int, source: str) -> tuple[int, int, int, bytes]:
    """``(bank size, bank, sequence, image)`` of the newest intact bank.

    ``ValueError`` naming ``source`` if the file is no card file or neither bank is intact.
    A legacy single-image file (plain JSON) comes back as bank -1.

    A card is loaded at every tap, so this reads little: the file header with bank A's
    first bytes in one ``pread``, bank B's in another (most images are whole in them), and
    checks the checksum of the bank with the higher sequence first — the other matters
    only if that one is torn.
    """
    first = os.pread(fd, BANK_A + _CHUNK, 0)
    header = first[: _FILE_HEADER.size]
    if header[:1] == b"{":  # a card file from before the two banks: one JSON image
        return 0, -1, 0, first + _read_all(fd, len(first))
    if len(header) < _FILE_HEADER.size or header[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{source} is not an sbcard virtual card (no {MAGIC.decode()} card-file header)")
    _, version, _, bank_size = _FILE_HEADER.unpack(header)
    if version != FILE_VERSION:
        raise ValueError(f"{source}: card file format version {version}, this card OS reads version {FILE_VERSION}")
    if not _MIN_BANK <= bank_size <= _MAX_BANK:
        raise ValueError(f"{source}: damaged card-file header (bank size {bank_size})")
    heads = [_bank_head(fd, 0, bank_size, first[BANK_A:]), _bank_head(fd, 1, bank_size)]
    why: list[str | None] = [h if isinstance(h, str) else None for h in heads]
    order = [bank for bank in (0, 1) if why[bank] is None]
    if len(order) == 2 and heads[1][0] > heads[0][0]:  # type: ignore[index]
        order.reverse()  # the newest first; on a tie (never written so) bank A
    for bank in order:
        head = heads[bank]
        assert not isinstance(head, str)
        image = _bank_image(fd, bank, bank_size, head)
        if not isinstance(image, str):
            return bank_size, bank, head[0], image
        why[bank] = image
    reasons = "; ".join(f"bank {name}: {w}" for name, w in zip(_BANK_NAMES, why))
    raise ValueError(f"{source}: neither EEPROM bank holds an intact card image ({reasons}); the card file is damaged")


def _read_all(fd: int, offset: int) -> bytes:
    chunks = []
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


_PATH = type(Path())  # PosixPath or WindowsPath: what Path(...) makes here


def as_path(path: Path | str) -> Path:
    """``Path(path)``, without making a new one of a path that is one (a card is opened at every tap)."""
    return path if type(path) is _PATH else Path(path)  # type: ignore[return-value]


def _open(path: Path, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0), 0o666)


def _current_image(path: Path) -> bytes:
    fd = _open(path, os.O_RDONLY)
    try:
        return _scan(fd, str(path))[3]
    finally:
        os.close(fd)


def load(path: Path | str) -> CardState:
    """Read and validate a card file (``FileNotFoundError`` if there is none)."""
    path = Path(path)
    return loads(_current_image(path), str(path))


def read_state(path: Path | str) -> dict[str, Any]:
    """The card's current image as JSON data, for tests, tools and debugging.

    ``python -m terminals.emulator.card_file FILE.card`` prints it.
    """
    path = Path(path)
    raw = _current_image(path)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is not an sbcard virtual card (not a JSON card image)") from None


class CardFile:
    """A card file as its card uses it: a file descriptor and the bank holding the current image.

    ``save`` writes the whole image into the *other* bank with one ``os.pwrite`` and a
    sequence number one higher; nothing else is written, no directory is touched. The
    descriptor is opened on first use and kept until ``close`` (the card's power-off);
    opening scans both banks, so a card file is always continued from its newest intact
    image. One card object writes a card file at a time, as one reader holds one card.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = as_path(path)
        self._fd: int | None = None
        self._bank_size = BANK_SIZE
        self._bank = 0  # holds the current image
        self._seq = 0
        self._read = False  # bank and sequence are the file's (read, written or vouched for by ``at``)
        self._vouched = False  # ``at``: the next open takes them without scanning

    @classmethod
    def at(cls, path: Path | str, place: tuple[int, int, int]) -> CardFile:
        """A card file whose current image the caller knows is at ``place``: its first save
        opens the file and writes, without scanning the banks.

        ``place`` is ``CardFile.place`` of the file object that last read or wrote this
        card file (e.g. a simulator keeping a card's image between taps keeps that object
        too); anything else that may have written the file since calls for ``open``.
        """
        bank_size, bank, seq = place
        if not _MIN_BANK <= bank_size <= _MAX_BANK or bank not in (0, 1) or seq < 0:
            raise ValueError(f"{path}: no card-file place {place!r}")
        f = cls(path)
        f._bank_size, f._bank, f._seq = bank_size, bank, seq
        f._read = f._vouched = True
        return f

    @property
    def place(self) -> tuple[int, int, int] | None:
        """``(bank size, bank, sequence)`` of the current image (kept after ``close``); None
        while the file has not been read."""
        return (self._bank_size, self._bank, self._seq) if self._read else None

    @classmethod
    def open(cls, path: Path | str) -> tuple[CardFile, CardState]:
        """Open a card file and read its state (``FileNotFoundError``, ``ValueError``)."""
        f = cls(path)
        image = f._open()
        try:
            return f, loads(image, str(f.path))
        except BaseException:
            f.close()
            raise

    def __repr__(self) -> str:
        where = "closed" if self._fd is None else f"bank {_BANK_NAMES[self._bank]}, sequence {self._seq}"
        return f"CardFile({str(self.path)!r}, {where})"

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _open(self) -> bytes:
        fd = _open(self.path, os.O_RDWR)
        try:
            bank_size, bank, seq, image = _scan(fd, str(self.path))
            if bank < 0:  # a legacy file: rewrite it in two banks, once, atomically
                os.close(fd)
                fd = -1
                loads(image, str(self.path))  # only a valid card is upgraded
                _write_new(self.path, image, replace=True)
                fd = _open(self.path, os.O_RDWR)
                bank_size, bank, seq, image = _scan(fd, str(self.path))
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        self._fd, self._bank_size, self._bank, self._seq = fd, bank_size, bank, seq
        self._read = True
        return image

    def save(self, state: CardState, *, durable: bool = False) -> None:
        self.write_image(dumps(state), durable=durable)

    def write_image(self, image: bytes, *, durable: bool = False) -> None:
        """Make ``image`` the card's current image: all of it, or (torn) none of it.

        On any error the file still holds the previous image as its current one.
        """
        if self._fd is None:
            if self._vouched:  # ``at``: the caller knows the banks
                self._fd = _open(self.path, os.O_RDWR)
                self._vouched = False
            else:
                self._open()
        fd = self._fd
        assert fd is not None
        capacity = self._bank_size - _BANK_HEADER.size
        if len(image) > capacity:
            raise CardImageTooLarge(
                f"{self.path}: a card image of {len(image):,} bytes does not fit an EEPROM bank ({capacity:,} bytes)"
            )
        bank, seq = 1 - self._bank, self._seq + 1
        offset = _bank_offset(bank, self._bank_size)
        record = _bank_record(seq, image)
        written = os.pwrite(fd, record, offset)
        if written != len(record):  # a bank torn by the system, not by us: the old one stays current
            raise OSError(f"{self.path}: short write to bank {_BANK_NAMES[bank]} ({written} of {len(record)} bytes)")
        if durable:
            try:
                getattr(os, "fdatasync", os.fsync)(fd)
            except BaseException:
                # The new image may or may not reach the disk: withdraw it, so the file
                # keeps the old image the caller falls back to.
                with contextlib.suppress(OSError):
                    os.pwrite(fd, bytes(_BANK_HEADER.size), offset)
                raise
        self._bank, self._seq = bank, seq

    def close(self) -> None:
        """Close the descriptor; the next save reopens the file (and rescans it)."""
        fd, self._fd = self._fd, None
        self._vouched = False
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:  # a card object dropped without power-off
        try:
            self.close()
        except Exception:  # noqa: BLE001 - e.g. at interpreter shutdown
            pass


def save(state: CardState, path: Path | str, *, durable: bool = False) -> None:
    """Write a new current image into a card file (see ``CardFile.save``)."""
    f = CardFile(path)
    try:
        f.save(state, durable=durable)
    finally:
        f.close()


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


# An unnamed file is named through its descriptor's entry in /proc (``linkat`` with AT_SYMLINK_FOLLOW).
_O_TMPFILE = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)  # this file system (or kernel) makes none


def _write_new(path: Path, image: bytes, *, replace: bool = False) -> None:
    """A new card file whose bank A holds ``image`` (sequence 1), put at ``path`` atomically:
    by ``os.link``, which refuses an existing file, or (``replace``) ``os.replace``.

    Where the system has them (Linux), a new card is written into an unnamed file
    (``O_TMPFILE``) that is then given its name: one write and one link, and no temporary
    name to make and remove (a set-up makes a card file for each of 100,000 people).
    """
    if len(image) > BANK_SIZE - _BANK_HEADER.size:
        raise CardImageTooLarge(f"{path}: a card image of {len(image):,} bytes does not fit an EEPROM bank")
    if not replace and _O_TMPFILE and _write_unnamed(path, image):
        return
    tmp = _temp_path(path)
    try:
        fd = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.pwrite(fd, _file_header(), 0)
            os.pwrite(fd, _bank_record(1, image), _bank_offset(0, BANK_SIZE))
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and refuses an existing target
    finally:
        tmp.unlink(missing_ok=True)


def _write_unnamed(path: Path, image: bytes) -> bool:
    """``_write_new`` by an unnamed file; False if this file system makes none (nothing written)."""
    try:
        fd = os.open(path.parent, os.O_WRONLY | _O_TMPFILE | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        if e.errno in _NO_TMPFILE and path.parent.is_dir():
            return False
        raise
    try:
        header = _file_header()
        os.pwrite(fd, b"".join((header, bytes(BANK_A - len(header)), _bank_record(1, image))), 0)
        # linkat(…, AT_SYMLINK_FOLLOW): atomic, and refuses an existing target. Python asks for it only
        # with a directory descriptor given; the source path is absolute, so the kernel ignores that one.
        os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)
    finally:
        os.close(fd)
    return True


def create(state: CardState, path: Path | str) -> None:
    """Write a new card file; ``FileExistsError`` if one is there (never overwrites)."""
    _write_new(Path(path), dumps(state))


def _main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m terminals.emulator.card_file FILE.card   (prints the card's current image)", file=sys.stderr)
        return 2
    try:
        doc = read_state(argv[0])
    except (OSError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
