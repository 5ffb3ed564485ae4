"""The card file: two EEPROM banks, torn saves, validation, persistence across process restarts."""

from __future__ import annotations

import json
import os
import random
import struct
import zlib
from pathlib import Path

import attrs
import pytest
from emulator_helpers import SELECT_DF04, SELECT_TU, ok, sw

from sbcard.chip import profile
from sbcard.chip import sw as status_words
from sbcard.chip.purse import EP_PURCHASE
from terminals.emulator import card_file, image, image_codec, testing
from terminals.emulator.card import CardTorn, VirtualCard
from terminals.emulator.faults import Faults
from terminals.emulator.files import LAYOUT, Kind


def test_the_file_format(card_path: Path) -> None:
    doc = card_file.read_state(card_path)
    assert doc["format"] == "sbcard-virtual-card" and doc["version"] == 1
    assert doc["life_state"] == "personalised"
    assert doc["os_version"] == "0301"
    assert set(doc["keys"]) == {"MF/00/00", "MF/01/01", "TU/02/01", "TU/03/01", "TU/04/01", "TU/05/01"}
    assert set(doc["records"]) == {"SSSE/05", "SSSE/06", "DF04/05", "DF04/06"}
    assert doc["records"]["SSSE/05"]["07"] == b"188347080".hex()
    assert set(doc["binaries"]) == {"TU/15", "TU/17"}
    assert doc["purse"] == {"balance": 10_000, "offline_counter": 0, "online_counter": 1, "overdraft_limit": 0, "max_balance": 100_000}
    assert doc["pin"] == {"value": "123456", "tries_left": 3}
    assert doc["last_load"]["type"] == 2 and doc["last_purchase"] is None


def test_the_file_layout(card_path: Path) -> None:
    """Header, then bank A at 4096 and bank B one bank size later: seq | length | CRC-32 | image."""
    raw = card_path.read_bytes()
    magic, version, reserved, bank_size = struct.unpack(">8sHHI", raw[:16])
    assert (magic, version, reserved, bank_size) == (b"SBCARDVC", 1, 0, 32 * 1024)
    assert not raw[16:4096].strip(b"\0")
    banks = []
    for offset in (4096, 4096 + bank_size):
        seq, length, crc = struct.unpack(">QII", raw[offset : offset + 16])
        data = raw[offset + 16 : offset + 16 + length]
        assert zlib.crc32(raw[offset : offset + 12] + data) == crc
        banks.append((seq, data))
    (seq_a, image_a), (seq_b, image_b) = banks
    assert abs(seq_a - seq_b) == 1  # the card saved into each bank in turn
    current = image_a if seq_a > seq_b else image_b
    assert json.loads(current) == card_file.read_state(card_path)
    assert current == image_codec.dumps(card_file.load(card_path))  # compact, keys sorted


def test_a_new_card_file_has_one_image_in_bank_a(blank_path: Path) -> None:
    raw = blank_path.read_bytes()
    seq, length, _ = struct.unpack(">QII", raw[4096:4112])
    assert seq == 1 and len(raw) == 4096 + 16 + length  # bank B not written yet
    assert card_file.read_state(blank_path)["life_state"] == "blank"


def test_one_state_has_one_image(card_path: Path) -> None:
    state = card_file.load(card_path)
    assert json.loads(image_codec.dumps(state)) == card_file.read_state(card_path)
    assert image_codec.loads(image_codec.dumps(state)) == state


def test_create_never_overwrites(card_path: Path) -> None:
    before = card_path.read_bytes()
    with pytest.raises(FileExistsError):
        card_file.create(card_file.load(card_path), card_path)
    assert card_path.read_bytes() == before
    assert [p.name for p in card_path.parent.iterdir()] == ["card.json"]


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed file", "temporary name"])
def test_a_new_card_file_is_the_same_however_it_is_made(card_path: Path, tmp_path: Path, monkeypatch,
                                                         unnamed: bool) -> None:
    """Linux's unnamed file (``O_TMPFILE``, then named) or, where there is none, a temporary name linked."""
    if not unnamed:
        monkeypatch.setattr(card_file, "_O_TMPFILE", 0)
    elif not card_file._O_TMPFILE:
        pytest.skip("this system makes no unnamed files")
    state, folder = card_file.load(card_path), tmp_path / "made"
    folder.mkdir()
    card_file.create(state, folder / "new.card")
    assert card_file.load(folder / "new.card") == state
    assert [p.name for p in folder.iterdir()] == ["new.card"]  # no temporary file left
    with pytest.raises(FileExistsError):
        card_file.create(state, folder / "new.card")


def test_a_file_system_without_unnamed_files_gets_a_temporary_name(card_path: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    import errno

    real_open = os.open

    def no_tmpfile(path, flags, *args, **kwargs):
        if card_file._O_TMPFILE and flags & card_file._O_TMPFILE == card_file._O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)

    state, folder = card_file.load(card_path), tmp_path / "made"
    folder.mkdir()
    monkeypatch.setattr(os, "open", no_tmpfile)
    card_file.create(state, folder / "new.card")
    assert card_file.load(folder / "new.card") == state
    assert [p.name for p in folder.iterdir()] == ["new.card"]


def test_a_card_file_in_a_missing_folder_is_not_made(card_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        card_file.create(card_file.load(card_path), tmp_path / "no-such-folder" / "new.card")


# --- the two banks: torn saves ------------------------------------------------------------------


class _Killed(BaseException):
    """The process died in the middle of a write."""


def _torn_pwrite(monkeypatch, keep: int) -> None:
    """Make the next ``os.pwrite`` put only its first ``keep`` bytes in the file, then die."""
    real = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        real(fd, data[:keep], offset)
        raise _Killed

    monkeypatch.setattr(os, "pwrite", pwrite)


def _next_state(card_path: Path) -> image.CardState:
    state = card_file.load(card_path)
    state.purse = attrs.evolve(state.purse, balance=state.purse.balance - 1, offline_counter=7)
    return state


@pytest.mark.parametrize("target", ["an empty bank", "a bank holding an older image"])
def test_a_save_torn_at_every_byte_keeps_the_old_state(card_path: Path, blank_path: Path, monkeypatch, target: str) -> None:
    path = blank_path if target == "an empty bank" else card_path  # the template has saved many times
    old, old_bytes = card_file.load(path), path.read_bytes()
    new = _next_state(card_path) if path == card_path else attrs.evolve(old, ext_auth_tries=3)
    record_length = 16 + len(image_codec.dumps(new))
    for keep in range(record_length):
        path.write_bytes(old_bytes)
        f = card_file.CardFile(path)
        _torn_pwrite(monkeypatch, keep)
        with pytest.raises(_Killed):
            f.save(new)
        monkeypatch.undo()
        f.close()
        assert card_file.load(path) == old, f"torn after {keep} of {record_length} bytes"
    path.write_bytes(old_bytes)
    card_file.save(new, path)  # the whole record: the new state
    assert card_file.load(path) == new


def test_after_a_torn_save_the_card_writes_the_same_bank_again(card_path: Path, monkeypatch) -> None:
    card = VirtualCard.load(card_path, rng=random.Random(1))
    _torn_pwrite(monkeypatch, 100)
    with pytest.raises(_Killed):
        testing.purchase(card, 5)
    monkeypatch.undo()
    assert card_file.load(card_path) == card.state  # the journal undid the commit in memory too
    receipt = testing.purchase(card, 7)  # over the torn bank; the intact one is kept
    assert testing.balance(VirtualCard.load(card_path)) == 10_000 - 7
    assert card_file.read_state(card_path)["last_purchase"]["counter"] == receipt.counter
    assert card_file.load(card_path) == card.state


def _write_bank(path: Path, bank: int, seq: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(card_file._bank_offset(bank, card_file.BANK_SIZE))
        f.write(card_file._bank_record(seq, data))


@pytest.mark.parametrize(("seq_a", "seq_b", "winner"), [(5, 4, "A"), (4, 5, "B"), (1, 2**40, "B")])
def test_the_newer_intact_bank_wins(card_path: Path, seq_a: int, seq_b: int, winner: str) -> None:
    state = card_file.load(card_path)
    a = attrs.evolve(state, ext_auth_tries=1)
    b = attrs.evolve(state, ext_auth_tries=2)
    _write_bank(card_path, 0, seq_a, image_codec.dumps(a))
    _write_bank(card_path, 1, seq_b, image_codec.dumps(b))
    assert card_file.load(card_path) == (a if winner == "A" else b)
    card = VirtualCard.load(card_path)
    testing.purchase(card, 1)  # saved over the older bank, sequence + 1
    loser, newest = (1, seq_a) if winner == "A" else (0, seq_b)
    raw = card_path.read_bytes()
    offset = card_file._bank_offset(loser, card_file.BANK_SIZE)
    assert struct.unpack(">Q", raw[offset : offset + 8])[0] == newest + 1
    assert card_file.load(card_path) == card.state


def test_a_newer_bank_that_is_torn_loses(card_path: Path) -> None:
    state = card_file.load(card_path)
    older = attrs.evolve(state, ext_auth_tries=1)
    _write_bank(card_path, 0, 10, image_codec.dumps(older))
    torn = card_file._bank_record(11, image_codec.dumps(state))
    torn = torn[:-1] + bytes([torn[-1] ^ 1])  # one bit wrong
    with open(card_path, "r+b") as f:
        f.seek(card_file._bank_offset(1, card_file.BANK_SIZE))
        f.write(torn)
    assert card_file.load(card_path) == older


def _corrupt(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x20]))


def test_both_banks_damaged(card_path: Path) -> None:
    for bank in (0, 1):
        _corrupt(card_path, card_file._bank_offset(bank, card_file.BANK_SIZE) + 16 + 40)
    for read in (card_file.load, card_file.read_state, VirtualCard.load):
        with pytest.raises(ValueError, match="neither EEPROM bank holds an intact card image") as e:
            read(card_path)
        assert str(card_path) in str(e.value)
        assert "bank A: torn (checksum mismatch)" in str(e.value) and "bank B: torn (checksum mismatch)" in str(e.value)


def test_one_bank_damaged_the_other_empty(blank_path: Path) -> None:
    _corrupt(blank_path, 4096 + 3)  # the sequence
    with pytest.raises(ValueError, match=r"bank A: torn \(checksum mismatch\); bank B: empty") as e:
        card_file.load(blank_path)
    assert str(blank_path) in str(e.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not an sbcard virtual card"),
        (b"\xff\xfe\x00garbage", "not an sbcard virtual card"),
        (b"hello", "not an sbcard virtual card"),
        (b"[1, 2]", "not an sbcard virtual card"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not an sbcard virtual card"),
        (b"SBCARDVC", "not an sbcard virtual card"),  # a header cut short
        (b"SBCARDVC\x00\x02\x00\x00\x00\x00\x80\x00", "card file format version 2, this card OS reads version 1"),
        (b"SBCARDVC\x00\x01\x00\x00\x00\x00\x00\x10", "damaged card-file header"),
        (b"SBCARDVC\x00\x01\x00\x00\x00\x00\x80\x00", "bank A: empty; bank B: empty"),
        # a card file from before the banks: one JSON image
        (b"{}", "no format marker 'sbcard-virtual-card'"),
        (b'{"format": "sbcard-virtual-card", "version": 2}', "format version 2"),
        (b"{garbage", "not a JSON card image"),
    ],
)
def test_a_file_that_is_no_card(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.card"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as e:
        VirtualCard.load(path)
    assert str(path) in str(e.value)
    if not content.startswith(b"{"):  # read_state shows an old JSON image as it is
        with pytest.raises(ValueError, match=message):
            card_file.read_state(path)
    assert path.read_bytes() == content  # never "repaired"


def test_a_card_file_from_before_the_banks_is_upgraded(card_path: Path) -> None:
    state = card_file.load(card_path)
    card_path.write_bytes(image_codec.dumps(state))  # the old format: the image alone
    assert card_file.load(card_path) == state and card_file.read_state(card_path)["format"] == "sbcard-virtual-card"
    card = VirtualCard.load(card_path)
    assert card_path.read_bytes().startswith(b"SBCARDVC")
    assert card_file.load(card_path) == state
    testing.purchase(card, 1)
    assert card_file.load(card_path) == card.state
    assert [p.name for p in card_path.parent.iterdir()] == ["card.json"]


def test_an_image_too_large_for_a_bank(card_path: Path) -> None:
    before = card_path.read_bytes()
    f = card_file.CardFile(card_path)
    with pytest.raises(card_file.CardImageTooLarge, match="does not fit an EEPROM bank"):
        f.write_image(b"{" + b" " * (card_file.BANK_SIZE - 17) + b"}")
    f.close()
    assert card_path.read_bytes() == before


def test_the_fullest_card_fits_a_bank(card_path: Path) -> None:
    """Every file of the layout at its fullest, and many more keys, leave half a bank free."""
    state = card_file.load(card_path)
    full = b"\xff" * 256
    for ref, ef in LAYOUT.items():
        if ef.kind is Kind.TLV:
            state.records[ref] = {tag: full[:n] for tag, n in ef.tags.items()}
        elif ef.kind is Kind.BINARY:
            state.binaries[ref] = full[: ef.size]
        elif ef.kind is Kind.CYCLIC:
            state.logs[ref] = (full[: ef.size],) * ef.count
        else:
            state.records[ref] = {n: full[: ef.size] for n in range(1, ef.count + 1)}
    key = next(iter(state.keys.values()))
    state.keys |= {(df, usage, index): key for df in image.DF_NAMES for usage in profile.KeyUsage for index in (1, 2, 3)}
    assert len(image_codec.dumps(state)) < (card_file.BANK_SIZE - 16) // 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("chip_serial", "0102", "chip_serial: 2 bytes, expected 8"),
        ("chip_serial", "zz", "chip_serial: not hex"),
        ("life_state", "broken", "life_state: unknown 'broken'"),
        ("ext_auth_tries", 16, "ext_auth_tries: expected an integer 0..15"),
        ("keys", {"MF/09/01": {"alg": 4, "version": 1, "key": "00" * 16}}, "unknown usage"),
        ("keys", {"XX/01/01": {"alg": 4, "version": 1, "key": "00" * 16}}, "unknown DF 'XX'"),
        ("keys", {"MF/01/01": {"alg": 7, "version": 1, "key": "00" * 16}}, "unknown algorithm id 07"),
        ("records", {"SSSE/5": {}}, "SFI: expected two hex digits"),
        ("purse", {"balance": -1}, "purse.max_balance"),
        ("pin", {"value": "1234", "tries_left": 3}, "pin.value: 2 bytes, expected 3"),
        ("locked", "TU", "locked: expected a list"),
        ("last_purchase", {"type": 6, "counter": 0, "mac2": "00", "tac": "00000000"}, "last_purchase.mac2"),
    ],
)
def test_a_damaged_card_file_names_what_is_wrong(card_path: Path, field: str, value, message: str) -> None:
    """An intact bank (its checksum right) whose image is wrong: an error, not the older bank."""
    doc = card_file.read_state(card_path)
    doc[field] = value
    f = card_file.CardFile(card_path)
    f.write_image(json.dumps(doc).encode())
    f.close()
    with pytest.raises(ValueError, match="not a valid sbcard virtual card") as e:
        VirtualCard.load(card_path)
    assert message in str(e.value)
    assert str(card_path) in str(e.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        VirtualCard.load(tmp_path / "none.json")


def test_a_save_leaves_no_temporary_file(card: VirtualCard, card_path: Path) -> None:
    testing.purchase(card, 1)
    assert [p.name for p in card_path.parent.iterdir()] == ["card.json"]


@pytest.mark.parametrize("failure", ["error", "short write"])
def test_a_failed_save_keeps_the_old_file_and_the_old_state(card: VirtualCard, card_path: Path, monkeypatch, failure: str) -> None:
    before, state_before = card_path.read_bytes(), card_file.load(card_path)
    real_pwrite = os.pwrite

    def full_disk(fd, data, offset):
        if failure == "error":
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data[:1000], offset)

    p = testing.start_purchase(card, 100)
    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(status_words.CardStatus) as e:
        testing.finish_purchase(card, p)
    assert e.value.sw == status_words.NO_PRECISE_DIAGNOSIS
    monkeypatch.undo()
    assert card_file.load(card_path) == state_before
    if failure == "error":
        assert card_path.read_bytes() == before
    assert card.state == state_before  # the journal undid the applied writes
    assert [p.name for p in card_path.parent.iterdir()] == ["card.json"]
    testing.purchase(card, 100)  # and the card still works


def test_everything_persists_across_a_process_restart(card: VirtualCard, card_path: Path) -> None:
    receipt = testing.purchase(card, 321)
    run_verify = sw(card, "0020000003000000")
    assert run_verify == 0x63C2
    ok(card, SELECT_DF04)
    ok(card, "0020000003123456")
    ok(card, "00E2004020" + "5A" * 32)
    assert sw(card, "0020000003000000") == 0x63C2
    state = card.state

    restarted = VirtualCard.load(card_path)
    assert restarted.state == state
    assert testing.balance(restarted) == 10_000 - 321
    assert testing.transaction_prove(restarted, EP_PURCHASE, receipt.counter) == (receipt.mac2, receipt.tac)
    assert sw(restarted, "00200000") == 0x63C2  # tries left, not 9000: the verification was RAM
    ok(restarted, SELECT_DF04)
    assert ok(restarted, "00B2014400") == b"\x5a" * 32
    assert ok(restarted, "0020000003123456") == b""


def test_power_on_resets_the_session(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    ok(card, "0020000003123456")
    testing.start_purchase(card, 1)
    card.power_on()
    assert sw(card, "805C000204") == 0x6985  # the MF is selected again
    ok(card, SELECT_TU)
    assert sw(card, "805401000F" + "00" * 15) == 0x6985


def test_process_powers_an_unpowered_card_on(card_path: Path) -> None:
    card = VirtualCard.load(card_path)
    assert ok(card, "80CA00C1")[8] == profile.LifeState.PERSONALISED


def test_trace_hook(card: VirtualCard) -> None:
    lines: list[str] = []
    card.trace = lines.append
    ok(card, "80CA00C1")
    assert lines[0] == "> 80 CA 00 C1" and lines[1].startswith("< ") and lines[1].endswith("90 00")


def _count_syncs(monkeypatch) -> list[int]:
    synced: list[int] = []
    for name in ("fsync", "fdatasync"):
        if hasattr(os, name):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, lambda fd, real=real: synced.append(fd) or real(fd))
    return synced


def test_a_durable_card_fsyncs(card_path: Path, monkeypatch) -> None:
    synced = _count_syncs(monkeypatch)
    card = VirtualCard(card_path, card_file.load(card_path), durable=True)
    testing.purchase(card, 1)
    assert synced
    synced.clear()
    testing.purchase(VirtualCard.load(card_path, durable=True), 1)
    assert synced
    synced.clear()
    plain = VirtualCard.load(card_path)
    testing.purchase(plain, 1)
    assert not synced


def test_a_failed_fsync_withdraws_the_new_image(card_path: Path, monkeypatch) -> None:
    state_before = card_file.load(card_path)
    card = VirtualCard.load(card_path, durable=True)
    p = testing.start_purchase(card, 100)

    def broken(fd):
        raise OSError(5, "Input/output error")

    for name in ("fsync", "fdatasync"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, broken)
    with pytest.raises(status_words.CardStatus):
        testing.finish_purchase(card, p)
    monkeypatch.undo()
    assert card.state == state_before and card_file.load(card_path) == state_before
    testing.purchase(card, 100)
    assert card_file.load(card_path) == card.state


# --- the card's file descriptor -----------------------------------------------------------------


def _open_fds(path: Path) -> int:
    """How many of this process's descriptors are open on ``path``."""
    target = str(path.resolve())
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            pass
    return n


linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")


@linux_only
def test_the_card_keeps_its_file_open_until_power_off(card_path: Path) -> None:
    card = VirtualCard.load(card_path)
    assert _open_fds(card_path) == 1
    testing.purchase(card, 1)
    testing.purchase(card, 1)
    assert _open_fds(card_path) == 1  # one descriptor, every save
    card.power_off()
    assert _open_fds(card_path) == 0
    testing.purchase(card, 1)  # powered on again by the reader's field: the file reopens
    assert _open_fds(card_path) == 1
    card.close()
    assert _open_fds(card_path) == 0
    assert testing.balance(VirtualCard.load(card_path)) == 10_000 - 3


@linux_only
def test_dropped_and_torn_cards_release_their_files(card_path: Path) -> None:
    for _ in range(20):
        testing.purchase(VirtualCard.load(card_path), 1)  # never powered off
    assert _open_fds(card_path) == 0
    card = VirtualCard.load(card_path, Faults(tear_at_write=1))
    assert _open_fds(card_path) == 1
    with pytest.raises(CardTorn):
        testing.purchase(card, 1)
    assert _open_fds(card_path) == 0 and card.torn
    with VirtualCard.load(card_path) as card:
        testing.purchase(card, 1)
    assert _open_fds(card_path) == 0


def test_a_card_reopened_after_power_off_continues_from_the_newest_image(card_path: Path) -> None:
    """Another card object wrote the file meanwhile: the last writer wins, as with whole-file saves."""
    first = VirtualCard.load(card_path, rng=random.Random(1))
    testing.purchase(first, 1)
    first.power_off()
    second = VirtualCard.load(card_path, rng=random.Random(2))
    for _ in range(3):
        testing.purchase(second, 10)
    second.close()
    testing.purchase(first, 100)  # a new tap of the old object: it rescans the banks
    assert card_file.load(card_path) == first.state
    assert testing.balance(VirtualCard.load(card_path)) == 10_000 - 101


def test_the_dump_helper(card_path: Path, capsys) -> None:
    assert card_file._main([str(card_path)]) == 0
    assert json.loads(capsys.readouterr().out) == card_file.read_state(card_path)
    assert card_file._main([str(card_path.with_name("none.card"))]) == 1


# --- faults -----------------------------------------------------------------------------------


def test_faults_from_a_query() -> None:
    assert Faults.from_query({}) == Faults()
    assert Faults.from_query({"tear": "3"}) == Faults(tear_at_write=3)
    assert Faults.from_query({"tear": " 12 "}).tear_at_write == 12


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"tear": "0"}, "'tear'"),
        ({"tear": "-1"}, "'tear'"),
        ({"tear": "x"}, "'tear'"),
        ({"tear": ""}, "'tear'"),
        ({"tear": "٣"}, "'tear'"),  # a digit, but not ASCII
        ({"tare": "3"}, "'tare'"),
        ({"tear": "1", "seed": "2"}, "'seed'"),
    ],
)
def test_bad_fault_options_name_the_option(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.from_query(query)


@pytest.mark.parametrize("value", [0, -2, True, 1.5])
def test_faults_refuse_a_bad_write_number(value) -> None:
    with pytest.raises(ValueError, match="tear_at_write"):
        Faults(tear_at_write=value)


def test_a_seeded_card_is_reproducible(template: Path, tmp_path: Path) -> None:
    images = []
    for name in ("a.json", "b.json"):
        path = tmp_path / name
        path.write_bytes(template.read_bytes())
        card = VirtualCard.load(path, rng=random.Random(42))
        testing.purchase(card, 7)
        testing.load(card, 9)
        images.append(path.read_bytes())
    assert images[0] == images[1]
