"""Personalisation: data preparation, the script, and issuing real (emulated) cards.

The emulated card (``terminals/emulator``) is the card here, reached through the same
``Reader`` port a PC/SC reader implements.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from chip_helpers import keys_for, make_card_data

from sbcard.chip import commands
from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.apdu import Command
from sbcard.chip.keys import transport_key
from sbcard.chip.personalisation import (
    CardData,
    CardNotBlank,
    PersonalisationMismatch,
    build_script,
    personalise,
    ten_years_after,
)
from sbcard.chip.reader import CardIOError
from sbcard.chip.reading import read_card
from sbcard.domain.errors import InvalidInput
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator.blank import create_blank
from terminals.emulator.faults import Faults

# ------------------------------------------------------------------ the data


def test_derived_fields_follow_the_profile(card_data):
    assert card_data.sex == "M" and card_data.birth_date == dt.date(1953, 2, 14)  # from the citizen ID
    assert card_data.expiry_date == dt.date(2034, 3, 1)
    assert card_data.insured_region == "110105"
    assert card_data.issuer_id == "1101050000000000"
    assert card_data.init_org == bytes.fromhex("110105") + bytes(9)
    assert card_data.card_unique == bytes.fromhex("AD932A48BDC3B9E9")
    assert card_data.personal_account  # employee insurance has a personal account


@pytest.mark.parametrize(
    "issued, expires",
    [(dt.date(2024, 3, 1), dt.date(2034, 3, 1)), (dt.date(2024, 2, 29), dt.date(2034, 2, 28))],
)
def test_a_card_is_valid_ten_years_and_29_february_falls_back_to_the_28th(issued, expires):
    assert ten_years_after(issued) == expires
    assert make_card_data(issue_date=issued).expiry_date == expires


def test_input_is_normalised_as_people_type_it():
    card = make_card_data(card_number="b7k334774", citizen_id="320223 19530214 7992", name=" 张三 ")
    assert (card.card_number, card.citizen_id, card.name) == ("B7K334774", "320223195302147992", "张三")


REFUSALS = [
    # field, change, error code
    ("name", dict(name="张𠀀"), "name.not_gbk"),
    ("name", dict(name="欧" * 16), "name.too_long"),
    ("name", dict(name=" "), "name.empty"),
    ("card_number", dict(card_number="188347081"), "card_number.check_char"),
    ("card_id_code", dict(card_id_code="110105D156000006AD932A48BDC3B9E9"), "card_id_code.rid"),
    ("card_id_code", dict(card_id_code="120101D156000005AD932A48BDC3B9E9"), "card_id_code.region"),
    ("region", dict(region_code="320200", card_id_code="320200D156000005AD932A48BDC3B9E9"), "region.outside"),
    ("citizen_id", dict(citizen_id="320223195302147993"), "citizen_id.check_char"),
    ("sex", dict(sex="F"), "sex.mismatch"),
    ("sex", dict(sex="X"), "sex.format"),
    ("birth_date", dict(birth_date=dt.date(1953, 2, 15)), "birth_date.mismatch"),
    ("birth_place", dict(birth_place="3202"), "birth_place.format"),
    ("ethnicity", dict(ethnicity=57), "ethnicity.unknown"),
    ("issue_date", dict(issue_date="2024-03-01"), "issue_date.format"),
    ("expiry_date", dict(expiry_date=dt.date(2024, 3, 1)), "expiry_date.order"),
    ("app_serial", dict(app_serial="0320" + "0" * 16), "app_serial.prefix"),
    ("app_serial", dict(app_serial="0310"), "app_serial.format"),
    ("insured_region", dict(insured_region="11"), "insured_region.format"),
    ("insurance_type", dict(insurance_type="commercial"), "insurance_type.unknown"),
    ("retired", dict(retired="no"), "retired.format"),
    ("initial_pin", dict(initial_pin="12345"), "pin.format"),
    ("offline_limit_fen", dict(offline_limit_fen=-1), "offline_limit_fen.range"),
]


@pytest.mark.parametrize("field, change, code", REFUSALS, ids=[f"{r[0]}-{r[2]}" for r in REFUSALS])
def test_bad_card_data_is_refused_with_the_field_named(field, change, code):
    with pytest.raises(InvalidInput) as caught:
        make_card_data(**change)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_the_pin_does_not_appear_in_the_repr(card_data):
    assert "123456" not in repr(card_data)


# ------------------------------------------------------------------ the script


def test_the_script_writes_keys_then_each_application_then_pin_and_status_last(card_data, keys):
    script = build_script(card_data, keys)
    shape = [(c.cla, c.ins, c.p1, c.p2) for c in script]
    select = (0x00, profile.Ins.SELECT, 0x04, 0x00)
    expected = (
        [(0x80, profile.Ins.ERASE, 0, 0)]
        + [(0x80, profile.Ins.WRITE_KEY, usage, 0x01) for usage in (1, 2, 3, 4, 5)]
        + [select]
        + [(0x00, profile.Ins.UPDATE_RECORD, tag, 0x2C) for tag in profile.EF05_TAGS]
        + [(0x00, profile.Ins.UPDATE_RECORD, tag, 0x34) for tag in profile.EF06_TAGS]
        + [select]
        + [(0x00, profile.Ins.UPDATE_RECORD, tag, 0x2C) for tag in (1, 2, 3, 4)]
        + [(0x00, profile.Ins.UPDATE_RECORD, tag, 0x34) for tag in (1, 2, 3)]
        + [select]
        + [(0x00, profile.Ins.UPDATE_BINARY, 0x95, 0), (0x00, profile.Ins.UPDATE_BINARY, 0x97, 0)]
        + [(0x00, profile.Ins.RESET_RETRY_COUNTER, 0x02, 0x00), (0x80, profile.Ins.SET_STATUS, 0x00, 0x03)]
    )
    assert shape == expected
    assert [c.data for c in script if c.ins == profile.Ins.SELECT] == [profile.SSSE_NAME, profile.AID_DF04, profile.AID_TUNION]
    assert len(script) == 33


def test_the_script_carries_the_records_as_the_profile_encodes_them(card_data, keys):
    by_header = {c.to_bytes()[:4]: c.data for c in build_script(card_data, keys)}
    assert by_header[bytes.fromhex("00DC0934")] == bytes((0x09, 30)) + "张三".encode("gbk") + b" " * 26
    assert by_header[bytes.fromhex("00DC0A34")] == bytes.fromhex("0A0131")  # male: ASCII 1
    assert by_header[bytes.fromhex("00DC0D34")] == bytes.fromhex("0D0419530214")
    assert by_header[bytes.fromhex("00DC072C")] == bytes((0x07, 9)) + b"188347080"
    t_union = by_header[bytes.fromhex("00D69500")]
    assert t_union == bytes.fromhex("1101050000000000" "01" "03" "03101000000000000042" "20240301" "20340301" "0000")
    assert by_header[bytes.fromhex("00D69700")] == bytes(64)
    assert by_header[bytes.fromhex("002C0200")] == bytes.fromhex("123456")


# ------------------------------------------------------------------ on the emulated card


class Counting:
    """Wraps a reader and records what went through it (to show nothing did)."""

    def __init__(self, reader) -> None:
        self.reader, self.sent = reader, []
        self.name = reader.name

    @property
    def atr(self) -> bytes:
        return self.reader.atr

    def card_present(self) -> bool:
        return self.reader.card_present()

    def transmit_raw(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.reader.transmit_raw(apdu)

    def close(self) -> None:
        self.reader.close()


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    path = tmp_path / "card.json"
    create_blank(path)
    return path


def issue(path: Path, card: CardData, **reader_options):
    with EmulatorReader(path, **reader_options) as reader:
        return personalise(reader, card, keys_for(card))


def read(path: Path):
    with EmulatorReader(path) as reader:
        return read_card(reader)


def test_a_blank_card_is_personalised_and_reads_back_what_was_written(blank, card_data):
    result = issue(blank, card_data)
    assert not result.resumed
    snapshot = read(blank)
    assert snapshot == result.snapshot
    assert snapshot.life_state is profile.LifeState.PERSONALISED
    assert (snapshot.card_number, snapshot.card_id_code, snapshot.citizen_id, snapshot.name) == (
        "188347080",
        "110105D156000005AD932A48BDC3B9E9",
        "320223195302147992",
        "张三",
    )
    assert (snapshot.issue_date, snapshot.expiry_date, snapshot.birth_date) == (
        dt.date(2024, 3, 1),
        dt.date(2034, 3, 1),
        dt.date(1953, 2, 14),
    )
    assert snapshot.app_serial == "03101000000000000042"
    assert snapshot.insurance.retired and snapshot.insurance.offline_limit_fen == 20_000
    assert (snapshot.balance_fen, snapshot.transactions, snapshot.warnings) == (0, (), ())


def test_one_issuance_takes_a_known_number_of_apdus(blank, card_data):
    result = issue(blank, card_data)
    # GET DATA + GET CHALLENGE + EXTERNAL AUTHENTICATE, the script, the read-back, the PIN counter.
    assert result.script_apdus == len(build_script(card_data, keys_for(card_data))) == 33
    with EmulatorReader(blank) as reader:
        counting = Counting(reader)
        read_card(counting)
    assert result.apdus == 3 + 33 + len(counting.sent) + 1


def test_the_card_keys_are_in_place_and_the_transport_key_is_retired(blank, card_data):
    result = issue(blank, card_data)
    keys = keys_for(card_data)
    with EmulatorReader(blank) as reader:
        commands.external_authenticate(reader, keys.maintenance, profile.CARD_KEY_INDEX)
        with pytest.raises(sw.CardStatus) as caught:
            commands.external_authenticate(reader, transport_key(result.chip_serial), profile.TRANSPORT_KEY_INDEX)
        assert caught.value.sw == sw.KEY_NOT_FOUND
        commands.Verify(card_data.initial_pin).send(reader)


def test_a_personalised_card_is_refused_and_left_as_it_was(blank, card_data):
    issue(blank, card_data)
    before = read(blank)
    other = make_card_data(card_number="B7K334774", card_id_code="110105D156000005000000000000BEEF")
    with pytest.raises(CardNotBlank) as caught:
        issue(blank, other)
    assert caught.value.code == "card.not_blank" and caught.value.exit_code == 1
    assert read(blank) == before


def test_a_card_already_holding_exactly_this_data_is_accepted_without_writing(blank, card_data):
    issue(blank, card_data)
    with EmulatorReader(blank) as reader:
        counting = Counting(reader)
        result = personalise(counting, card_data, keys_for(card_data))
    assert result.resumed and result.script_apdus == 0
    writes = {profile.Ins.ERASE, profile.Ins.WRITE_KEY, profile.Ins.UPDATE_RECORD, profile.Ins.UPDATE_BINARY, profile.Ins.SET_STATUS}
    assert not [a for a in counting.sent if Command.parse(a).ins in writes]


def test_the_same_data_under_other_keys_is_a_mismatch_not_a_success(blank, card_data):
    issue(blank, card_data)
    other_keys = keys_for(make_card_data(region_code="110101", card_id_code="110101D156000005AD932A48BDC3B9E9"))
    with EmulatorReader(blank) as reader:
        with pytest.raises(PersonalisationMismatch) as caught:
            personalise(reader, card_data, other_keys)
    assert caught.value.fields == ("maintenance_key",)


def test_a_bad_name_is_refused_before_any_apdu(blank):
    with EmulatorReader(blank) as reader:
        counting = Counting(reader)
        with pytest.raises(InvalidInput) as caught:
            personalise(counting, make_card_data(name="张𠀀"), keys_for(make_card_data()))
    assert caught.value.field == "name"
    assert counting.sent == []
    assert read(blank).life_state is profile.LifeState.BLANK


def test_a_card_left_personalising_is_personalised_from_the_start(blank, card_data):
    with EmulatorReader(blank) as reader:
        chip = commands.GetChipInfo().send(reader)
        commands.external_authenticate(reader, transport_key(chip.chip_serial), profile.TRANSPORT_KEY_INDEX)
        commands.Erase().send(reader)
    assert read(blank).life_state is profile.LifeState.PERSONALISING
    assert issue(blank, card_data).snapshot.card_number == card_data.card_number


def test_a_tear_at_any_write_leaves_a_card_that_never_looks_valid_and_can_be_redone(tmp_path, card_data):
    """Cut the power at write 1, 2, … until a run no longer tears; after each tear the card
    is blank or personalising with nothing readable — or, torn at SET STATUS's commit,
    complete — and personalising it again gives the same card."""
    complete = read_after = None
    n = 0
    while True:
        n += 1
        assert n < 500, "personalisation never finished"
        path = tmp_path / f"torn-{n}.json"
        create_blank(path)
        try:
            issue(path, card_data, faults=Faults(tear_at_write=n))
        except CardIOError:
            pass
        else:
            break
        read_after = read(path)
        if read_after.life_state is profile.LifeState.PERSONALISED:
            complete = n  # only the last commit may leave a finished card, and it is complete
            assert read_after.card_number == card_data.card_number and not read_after.warnings
        else:
            assert read_after.card_number is None and read_after.citizen_id is None, f"tear at write {n}"
            assert read_after.balance_fen is None
        again = issue(path, card_data)
        assert again.snapshot.card_number == card_data.card_number, f"tear at write {n}"
        assert again.resumed == (read_after.life_state is profile.LifeState.PERSONALISED)
    assert n > 33  # every command of the script wrote at least once before a run went through
    assert complete is not None  # the SET STATUS commit was among the torn writes
