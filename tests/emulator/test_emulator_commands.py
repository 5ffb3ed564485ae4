"""Every command of the card OS, APDU by APDU, on a personalised card (¥100.00 on it)."""

from __future__ import annotations

import pytest
from emulator_helpers import SELECT_DF04, SELECT_MF, SELECT_SSSE, SELECT_TU, ok, run, sw

from sbcard.chip import profile
from sbcard.chip import sw as status_words
from sbcard.chip import tlv
from sbcard.chip.codec import encode_name
from terminals.emulator import testing
from terminals.emulator.card import VirtualCard

SETUP = {
    "": [],
    "SSSE": [SELECT_SSSE],
    "DF04": [SELECT_DF04],
    "TU": [SELECT_TU],
    "CHALLENGE": ["0084000008"],
    "TU+CHALLENGE": [SELECT_TU, "0084000008"],
}
ZEROS16 = "00" * 16

# (setup, command, status word): every refusal the card knows, on a personalised card.
REFUSALS = [
    # malformed APDUs, unknown classes and instructions
    ("", "", 0x6700),
    ("", "00", 0x6700),
    ("", "00A404", 0x6700),
    ("", "00A4040005D1560000", 0x6700),  # Lc 5, 4 bytes follow
    ("", "00A404000000", 0x6700),  # a truncated extended length
    ("", "F0A40000", 0x6E00),
    ("", "01A4040000", 0x6E00),  # logical channel 1
    ("", "00FF0000", 0x6D00),
    ("", "80A40400", 0x6D00),
    ("", "84B20000", 0x6D00),
    ("", "00C0000000", 0x6D00),  # no GET RESPONSE: the card answers with data directly
    # SELECT
    ("", "00A4040006D15600000599", 0x6A82),
    ("", "00A40000023F01", 0x6A82),
    ("", "00A40200023F00", 0x6A86),
    ("", "00A4040106D15600000501", 0x6A86),
    # READ RECORD
    ("SSSE", "00B20E3400", 0x6A83),  # EF06 has no tag 0E
    ("SSSE", "00B2002C00", 0x6A86),
    ("SSSE", "00B2012800", 0x6A86),  # P2 low bits must be 100
    ("SSSE", "00B2010400", 0x6A86),  # SFI 0: no current EF
    ("SSSE", "00B2013C00", 0x6A82),  # SFI 07
    ("", "00B2012C00", 0x6A82),  # the MF has no EF05
    ("SSSE", "00B2012C05", 0x6C12),  # tag 01: 2 + 16 bytes
    ("TU", "00B202C400", 0x6A83),  # the log holds the one load
    ("TU", "00B209D400", 0x6A83),  # capp cache has 8 records
    ("TU", "00B201AC00", 0x6985),  # 0015 is binary
    # READ BINARY
    ("TU", "00B0951E00", 0x6B00),
    ("TU", "00B0950020", 0x6C1E),
    ("TU", "00B0981000", 0x6985),  # the log is not binary
    ("TU", "00B0150000", 0x6A86),  # no SFI in P1
    ("TU", "00B0960000", 0x6A82),
    ("SSSE", "00B0850000", 0x6985),  # EF05 holds records
    # writes without EXTERNAL AUTHENTICATE (MK)
    ("SSSE", "00DC072C0B0709313838333437303830", 0x6982),
    ("TU", "00D695000100", 0x6982),
    ("", "80D4010112" + "0401" + ZEROS16, 0x6982),
    ("", "002C020003123456", 0x6982),
    ("", "800E0000", 0x6985),  # a personalised card is never erased
    ("", "80F00003", 0x6985),
    # GET DATA, GET CHALLENGE, EXTERNAL AUTHENTICATE
    ("", "80CA00C200", 0x6A88),
    ("", "0084000010", 0x6700),
    ("", "00840000", 0x6700),
    ("", "0084010008", 0x6A86),
    ("CHALLENGE", "0082000010" + ZEROS16, 0x6A88),  # TK no longer works
    ("CHALLENGE", "0082000510" + ZEROS16, 0x6A88),
    ("", "0082000110" + ZEROS16, 0x6985),  # no challenge
    ("CHALLENGE", "0082010110" + ZEROS16, 0x6A86),
    ("CHALLENGE", "0082000108" + "00" * 8, 0x6700),
    # PIN
    ("", "00200000021234", 0x6700),
    ("", "002000000312345F", 0x6A80),
    ("", "0020010003123456", 0x6A86),
    ("", "00200000", 0x63C3),
    ("", "0024000003123456", 0x6700),
    ("", "002400000612345612345A", 0x6A80),
    # DF04/EF06 without MK: the limit never, used and year only forward (card: 2024, used 0)
    ("DF04", "00DC0134060104000186A0", 0x6982),  # limit
    ("DF04", "00DC0334040302" + "2023", 0x6982),  # an earlier year
    ("DF04", "00DC0334040302202A", 0x6A80),  # not BCD
    ("DF04", "00DC023405" + "0203000000", 0x6A80),  # 3 bytes of used
    ("DF04", "00DC012C050103" + "130000", 0x6982),  # EF05 (insurance data) needs MK
    # the purse
    ("", "805C000204", 0x6985),  # T-Union not selected
    ("SSSE", "805000020B01000000011100000000010F", 0x6985),
    ("TU", "805C000104", 0x6A86),  # no e-deposit (ED)
    ("TU", "805001020A010000000111000000000F", 0x6700),
    ("TU", "805002020B01000000011100000000010F", 0x6A86),
    ("TU", "805001010B01000000011100000000010F", 0x6A86),
    ("TU", "805001020B01000000001100000000010F", 0x6A80),  # amount 0
    ("TU", "805001020B01000F42401100000000010F", 0x9401),  # ¥10,000.00 > balance
    ("TU", "805001020B02000000011100000000010F", 0x9403),  # key index 02
    ("TU", "805000020B0100018000110000000001" + "10", 0x6985),  # over ¥1,000.00
    ("TU", "805000020B0100000000110000000001" + "10", 0x6A80),  # load 0
    ("TU", "805401000F" + "00" * 15 + "08", 0x6985),  # no INITIALIZE
    ("TU", "805200000B" + "00" * 11 + "04", 0x6985),
    ("TU", "805A000602000008", 0x9406),  # no purchase yet
    ("TU", "805A000202000108", 0x9406),  # the load had counter 0
    ("TU", "805A000702000008", 0x6A86),
    ("TU", "805A00060100", 0x6700),
    ("TU", "80DC01D030" + "00" * 48, 0x6985),  # no compound purchase
    ("TU", "841E000004" + "00" * 4, 0x6985),  # no challenge
    ("CHALLENGE", "841E000004" + "00" * 4, 0x6985),  # T-Union not selected
    ("TU+CHALLENGE", "841E000004" + "00" * 4, 0x9302),
    ("TU+CHALLENGE", "841E010004" + "00" * 4, 0x6A86),
    ("TU+CHALLENGE", "841E000003" + "00" * 3, 0x6700),
]


@pytest.mark.parametrize(("setup", "apdu", "expected"), REFUSALS, ids=[f"{s or 'MF'}:{a[:14]}" for s, a, _ in REFUSALS])
def test_refusals(card: VirtualCard, setup: str, apdu: str, expected: int) -> None:
    for command in SETUP[setup]:
        ok(card, command)
    assert sw(card, apdu) == expected


def test_a_refused_write_changes_nothing(card: VirtualCard, card_path) -> None:
    before = card_path.read_bytes()
    for _, apdu, _ in REFUSALS:
        if apdu[:4] not in ("0020", "0082", "0024"):  # those spend tries, on purpose
            run(card, apdu)
    assert card_path.read_bytes() == before


# --- ATR, GET DATA, SELECT -------------------------------------------------------------------


def test_atr_carries_the_chip_serial(card: VirtualCard) -> None:
    assert card.power_on() == bytes.fromhex("3B6C0000") + b"SBC3" + card.chip_serial
    assert card.atr == card.power_on()


def test_get_data_gives_serial_life_state_and_os_version(card: VirtualCard) -> None:
    assert ok(card, "80CA00C10B") == card.chip_serial + bytes((profile.LifeState.PERSONALISED,)) + profile.OS_VERSION


def test_select_mf_by_fid(card: VirtualCard) -> None:
    assert ok(card, SELECT_MF) == bytes.fromhex("6F0483023F00")
    assert ok(card, "00A4000000") == bytes.fromhex("6F0483023F00")


@pytest.mark.parametrize("apdu", ["00A40400", "00A4040000", "00A4000000"])
def test_a_select_with_no_data_selects_the_mf_as_iso_7816_4_says(card: VirtualCard, apdu: str) -> None:
    """P1-P2 0000 or 0400 with the data field absent (Le 00 or none): the MF, the card's default."""
    ok(card, SELECT_TU)
    assert ok(card, apdu) == bytes.fromhex("6F0483023F00")
    assert sw(card, "00B0950000") == 0x6A82  # T-Union's EF15 is no longer in reach: the MF is selected
    assert run(card, "00A4040C").to_bytes() == b"\x90\x00"  # P2 0C: selected, no FCI


@pytest.mark.parametrize("name", [profile.SSSE_NAME, profile.AID_DF01, profile.AID_DF02, profile.AID_DF03, profile.AID_DF04, profile.AID_DF05])
def test_select_by_name_answers_the_name_in_the_fci(card: VirtualCard, name: bytes) -> None:
    fci = ok(card, f"00A40400{len(name):02X}{name.hex()}00")
    assert fci == tlv.encode(profile.TAG_FCI, tlv.encode(profile.TAG_DF_NAME, name))


@pytest.mark.parametrize("aid", [profile.AID_TUNION, profile.AID_TUNION_JJJ])
def test_both_tunion_aids_select_the_purse_with_its_issuer_data(card: VirtualCard, aid: bytes) -> None:
    fci = ok(card, f"00A40400{len(aid):02X}{aid.hex()}00")
    assert tlv.find(fci, profile.TAG_DF_NAME).value == aid
    assert tlv.find(fci, profile.TAG_TU_ISSUER_DATA).value == testing.card_data().tunion.to_bytes()
    assert ok(card, "00B0950000") == testing.card_data().tunion.to_bytes()


def test_select_with_p2_0c_answers_no_fci(card: VirtualCard) -> None:
    assert run(card, SELECT_TU.replace("00A40400", "00A4040C", 1)).to_bytes() == b"\x90\x00"


# --- READ RECORD / READ BINARY ----------------------------------------------------------------


def test_ssse_records_answer_whole_tlvs(card: VirtualCard) -> None:
    data = testing.card_data()
    ok(card, SELECT_SSSE)
    expected = {
        profile.Tag.CARD_ID_CODE: bytes.fromhex(data.card_id_code),
        profile.Tag.CARD_TYPE: b"3",
        profile.Tag.SPEC_VERSION: b"3.00",
        profile.Tag.INIT_ORG: bytes.fromhex("110000") + bytes(9),
        profile.Tag.ISSUE_DATE: bytes.fromhex("20240102"),
        profile.Tag.EXPIRY_DATE: bytes.fromhex("20340102"),
        profile.Tag.CARD_NUMBER: b"188347080",
        profile.Tag.CITIZEN_ID: b"320223195302147992",
        profile.Tag.NAME: encode_name("张三"),
        profile.Tag.SEX: b"1",
        profile.Tag.ETHNICITY: b"\x01",
        profile.Tag.BIRTH_PLACE: bytes.fromhex("320223"),
        profile.Tag.BIRTH_DATE: bytes.fromhex("19530214"),
    }
    for tag, value in expected.items():
        sfi = profile.SFI_EF05 if tag in profile.EF05_TAGS else profile.SFI_EF06
        assert ok(card, f"00B2{tag:02X}{profile.record_p2(sfi):02X}00") == tlv.encode(tag, value)
    assert ok(card, "00B2012C12") == tlv.encode(1, bytes.fromhex(data.card_id_code))  # exact Le


def test_medical_records(card: VirtualCard) -> None:
    ok(card, SELECT_DF04)
    assert ok(card, "00B2012C00") == bytes.fromhex("0103110000")
    assert ok(card, "00B2022C00") == b"\x02\x011"
    assert ok(card, "00B2033400") == bytes.fromhex("03022024")
    assert sw(card, "00B2014400") == 0x6A83  # the medical log starts empty


def test_read_binary_by_offset_and_length(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    issuer = testing.card_data().tunion.to_bytes()
    assert ok(card, "00B095000A") == issuer[:10]
    assert ok(card, "00B0950A0A") == issuer[10:20]
    assert ok(card, "00B0951D00") == issuer[29:]
    assert ok(card, "00B0970000") == bytes(64)  # 0017: all 00 until transit defines it


def test_capp_cache_records_read_as_zeros_until_written(card: VirtualCard) -> None:
    ok(card, SELECT_TU)
    assert ok(card, "00B201D400") == bytes(48)
    assert ok(card, "00B208D400") == bytes(48)


# --- writes under the maintenance key ----------------------------------------------------------


def test_update_record_and_binary_under_mk(card: VirtualCard, keys) -> None:
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    ok(card, SELECT_SSSE)
    ok(card, "00DC072C0B0709" + b"B7K334774".hex())
    assert ok(card, "00B2072C00") == tlv.encode(7, b"B7K334774")
    ok(card, SELECT_TU)
    ok(card, "00D697040201FF")
    assert ok(card, "00B0970008") == bytes.fromhex("0000000001FF0000")


@pytest.mark.parametrize(
    ("setup", "apdu", "expected"),
    [
        ("SSSE", "00DC072C0B0809" + "31" * 9, 0x6A80),  # the TLV's tag is not P1
        ("SSSE", "00DC072C0A0708" + "31" * 8, 0x6A80),  # 8 bytes for a 9-byte field
        ("SSSE", "00DC072C0C070931313131313131313100", 0x6A80),  # trailing byte
        ("SSSE", "00DC0E34030E0100", 0x6A83),  # EF06 has no tag 0E
        ("TU", "00DC01C417" + "00" * 23, 0x6985),  # the log is the purse's
        ("TU", "00DC09D430" + "00" * 48, 0x6A83),
        ("TU", "00DC01D42F" + "00" * 47, 0x6700),
        ("TU", "00D6951E0100", 0x6B00),
        ("TU", "00D6951D020000", 0x6700),
        ("TU", "00D69800" + "0100", 0x6985),  # the log is not binary
        ("", "80D4000012" + "0401" + ZEROS16, 0x6A86),  # the transport key is the factory's
        ("", "80D4090112" + "0401" + ZEROS16, 0x6A86),
        ("", "80D4010111" + "0401" + "00" * 15, 0x6700),
        ("", "80D4010112" + "0901" + ZEROS16, 0x6A80),
        ("", "002C000003123456", 0x6A86),
        ("", "002C0200021234", 0x6700),
    ],
)
def test_malformed_writes(card: VirtualCard, keys, setup: str, apdu: str, expected: int) -> None:
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    for command in SETUP[setup]:
        ok(card, command)
    assert sw(card, apdu) == expected


def test_write_key_replaces_a_key_under_mk(card: VirtualCard, keys) -> None:
    new_mk = bytes(range(16))
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    ok(card, "80D4010112" + "0402" + new_mk.hex())
    card.power_on()
    testing.external_authenticate(card, new_mk, profile.CARD_KEY_INDEX)


def test_authentication_does_not_survive_power_off(card: VirtualCard, keys) -> None:
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    card.power_off()
    assert sw(card, "002C020003123456") == 0x6982


# --- GET CHALLENGE / EXTERNAL AUTHENTICATE -------------------------------------------------------


def test_challenge_is_random_and_of_the_asked_length(card: VirtualCard) -> None:
    a, b, c = ok(card, "0084000008"), ok(card, "0084000008"), ok(card, "0084000004")
    assert len(a) == len(b) == 8 and a != b and len(c) == 4


def test_a_challenge_serves_one_authentication(card: VirtualCard, keys) -> None:
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    assert sw(card, "0082000110" + ZEROS16) == 0x6985


def test_wrong_cryptograms_count_down_and_block_for_good(card: VirtualCard, card_path, keys) -> None:
    for left in range(profile.EXT_AUTH_TRIES - 1, -1, -1):
        ok(card, "0084000008")
        assert sw(card, "0082000110" + ZEROS16) == 0x63C0 | left
    ok(card, "0084000008")
    assert sw(card, "0082000110" + ZEROS16) == 0x6983
    again = VirtualCard.load(card_path)
    again.power_on()
    with pytest.raises(status_words.AuthenticationBlocked):
        testing.external_authenticate(again, keys.maintenance, profile.CARD_KEY_INDEX)


def test_a_right_cryptogram_restores_the_tries(card: VirtualCard, keys) -> None:
    ok(card, "0084000008")
    assert sw(card, "0082000110" + ZEROS16) == 0x63CE
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    assert card.state.ext_auth_tries == profile.EXT_AUTH_TRIES


# --- the PIN -----------------------------------------------------------------------------------


def test_verify_the_pin(card: VirtualCard) -> None:
    ok(card, "0020000003123456")
    assert card.state.pin.tries_left == 3


def test_wrong_pins_count_down_then_block(card: VirtualCard, card_path) -> None:
    assert sw(card, "0020000003111111") == 0x63C2
    assert sw(card, "00200000") == 0x63C2
    assert sw(card, "0020000003111111") == 0x63C1
    assert sw(card, "0020000003111111") == 0x63C0
    assert sw(card, "0020000003123456") == 0x6983
    assert sw(card, "00200000") == 0x6983
    assert sw(card, "0024000006123456654321") == 0x6983
    reloaded = VirtualCard.load(card_path)
    assert sw(reloaded, "0020000003123456") == 0x6983


def test_a_right_pin_restores_the_tries(card: VirtualCard) -> None:
    assert sw(card, "0020000003111111") == 0x63C2
    ok(card, "0020000003123456")
    assert sw(card, "00200000") == 0x63C3


def test_reset_retry_counter_under_mk_unblocks_the_pin(card: VirtualCard, keys) -> None:
    for _ in range(3):
        run(card, "0020000003111111")
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    ok(card, "002C020003654321")
    ok(card, "0020000003654321")


def test_change_reference_data(card: VirtualCard) -> None:
    assert sw(card, "0024000006111111654321") == 0x63C2
    ok(card, "0024000006123456654321")
    assert sw(card, "0020000003123456") == 0x63C2
    ok(card, "0020000003654321")


# --- APPEND RECORD (DF04/EF08) -------------------------------------------------------------------


def test_append_record_after_verify_keeps_the_ten_newest(card: VirtualCard) -> None:
    ok(card, SELECT_DF04)
    ok(card, "0020000003123456")
    for n in range(1, 12):
        ok(card, "00E2004020" + f"{n:02X}" * 32)
    assert ok(card, "00B2014400") == bytes([11]) * 32
    assert ok(card, "00B20A4400") == bytes([2]) * 32
    assert sw(card, "00B20B4400") == 0x6A83


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00E200401F" + "00" * 31, 0x6700),
        ("00E2014020" + "00" * 32, 0x6A86),
        ("00E2004420" + "00" * 32, 0x6A86),
        ("00E2002820" + "00" * 32, 0x6985),  # EF05 is a TLV file
        ("00E2005020" + "00" * 32, 0x6A82),
    ],
)
def test_malformed_appends(card: VirtualCard, apdu: str, expected: int) -> None:
    ok(card, SELECT_DF04)
    ok(card, "0020000003123456")
    assert sw(card, apdu) == expected


def test_append_record_needs_no_pin(card: VirtualCard) -> None:
    """A medical point of sale logs a settlement without the holder's PIN (docs/card-profile.md)."""
    ok(card, SELECT_DF04)
    ok(card, "00E2004020" + "AB" * 32)
    assert ok(card, "00B2014400") == bytes([0xAB]) * 32


def _ef06(card: VirtualCard) -> tuple[int, str]:
    used = ok(card, "00B2023400")[2:]
    year = ok(card, "00B2033400")[2:]
    return int.from_bytes(used, "big"), year.hex()


def _used(fen: int) -> str:
    return "00DC02340602" + "04" + f"{fen:08X}"


def _year(year: int) -> str:
    return "00DC03340403" + "02" + f"{year:04d}"


@pytest.mark.parametrize(
    ("steps", "expected", "state"),
    [
        ([_used(500)], [0x9000], (500, "2024")),
        ([_used(500), _used(500)], [0x9000, 0x9000], (500, "2024")),
        ([_used(500), _used(499)], [0x9000, 0x6982], (500, "2024")),
        ([_used(500), _year(2024)], [0x9000, 0x9000], (500, "2024")),  # the same year: nothing changes
        ([_used(500), _year(2025)], [0x9000, 0x9000], (0, "2025")),  # a new year starts at 0
        ([_used(500), _year(2025), _used(20)], [0x9000, 0x9000, 0x9000], (20, "2025")),
        ([_year(2026), _year(2025)], [0x9000, 0x6982], (0, "2026")),
    ],
    ids=["up", "same", "down", "same-year", "new-year", "new-year-then-used", "year-back"],
)
def test_offline_settlement_moves_only_forward_without_mk(card: VirtualCard, steps, expected, state) -> None:
    ok(card, SELECT_DF04)
    assert [sw(card, step) for step in steps] == expected
    assert _ef06(card) == state


def test_offline_settlement_takes_any_value_under_mk(card: VirtualCard, keys) -> None:
    testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
    ok(card, SELECT_DF04)
    ok(card, _used(900))
    ok(card, _used(100))
    ok(card, _year(2020))
    assert _ef06(card) == (100, "2020")


def test_the_tunion_log_takes_no_append(card: VirtualCard) -> None:
    ok(card, "0020000003123456")
    ok(card, SELECT_TU)
    assert sw(card, "00E200C017" + "00" * 23) == 0x6985
