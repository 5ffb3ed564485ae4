"""Each command value builds the exact APDU of docs/card-profile.md and parses the answer."""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.chip import commands
from sbcard.chip import profile
from sbcard.chip import sw as status_words
from sbcard.chip.crypto import Algorithm, cbc_mac, encrypt_ecb
from sbcard.chip.tlv import Tlv
from sbcard.domain.errors import InvalidInput

H = bytes.fromhex
KEY = H("00112233445566778899AABBCCDDEEFF")
TERM = H("110000000001")
DATE_TIME = H("20250109070503")


class ScriptedCard:
    """A Reader whose card gives the answers it was told to, in order, and records what it got."""

    name = "scripted"
    atr = b""

    def __init__(self, *answers: str) -> None:
        self.answers = [H(a) for a in answers]
        self.sent: list[bytes] = []

    def card_present(self) -> bool:
        return True

    def transmit_raw(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answers.pop(0)

    def close(self) -> None:
        pass


APDUS = [
    (commands.SelectByName(profile.SSSE_NAME), "00A404000F" "7378312E73682EC9E7BBE1B1A3D5CF" "00"),
    (commands.select_tunion(), "00A4040008" "A000000632010105" "00"),
    (commands.SelectByName(profile.AID_TUNION_JJJ), "00A4040010" "A00000063201010510009156000014A1" "00"),
    (commands.select_medical(), "00A4040006" "D15600000503" "00"),
    (commands.SelectMF(), "00A4000002" "3F00" "00"),
    (commands.ReadRecord(profile.SFI_EF05, profile.Tag.CARD_NUMBER), "00B2072C00"),
    (commands.ReadRecord(profile.SFI_EF06, profile.Tag.NAME), "00B2093400"),
    (commands.ReadRecord(profile.SFI_TU_LOG, 1, by_tag=False), "00B201C400"),
    (commands.ReadBinary(profile.SFI_TU_ISSUER, 0, 30), "00B095001E"),
    (commands.UpdateRecord(profile.SFI_EF06, Tlv(profile.Tag.SEX, b"1")), "00DC0A3403" "0A0131"),
    (commands.UpdateBinary(profile.SFI_TU_MANAGEMENT, 0, bytes(64)), "00D6970040" + "00" * 64),
    (commands.AppendRecord(profile.SFI_EF08, bytes(32)), "00E2004020" + "00" * 32),
    (commands.GetChallenge(), "0084000008"),
    (commands.ExternalAuthenticate(0x01, bytes(16)), "0082000110" + "00" * 16),
    (commands.Verify("123456"), "0020000003123456"),
    (commands.PinTriesLeft(), "00200000"),
    (commands.ChangePin("123456", "654321"), "0024000006123456654321"),
    (commands.ResetRetryCounter("123456"), "002C020003123456"),
    (commands.GetChipInfo(), "80CA00C10B"),
    (commands.Erase(), "800E0000"),
    (commands.WriteKey(profile.KeyUsage.PURCHASE, 0x01, Algorithm.SM4, 0x01, KEY), "80D4020112" "0401" + KEY.hex()),
    (commands.WriteKey(profile.KeyUsage.MAINTENANCE, 0x01, Algorithm.DES3, 0x02, KEY), "80D4010112" "0002" + KEY.hex()),
    (commands.SetStatus(), "80F00003"),
    (commands.GetBalance(), "805C000204"),
    (commands.InitializeForPurchase(0x01, 300, TERM), "805001020B" "01" "0000012C" "110000000001" "0F"),
    (commands.InitializeForPurchase(0x01, 300, TERM, capp=True), "805003020B" "01" "0000012C" "110000000001" "0F"),
    (commands.UpdateCappDataCache(2, profile.SFI_TU_CAPP, bytes(48)), "80DC02D030" + "00" * 48),
    (
        commands.DebitForPurchase(H("00000102"), DATE_TIME, H("A1A2A3A4")),
        "805401000F" "00000102" "20250109" "070503" "A1A2A3A4" "08",
    ),
    (commands.InitializeForLoad(0x01, 5000, TERM), "805000020B" "01" "00001388" "110000000001" "10"),
    (commands.CreditForLoad(DATE_TIME, H("B1B2B3B4")), "805200000B" "20250109" "070503" "B1B2B3B4" "04"),
    (commands.GetTransactionProve(0x06, 5), "805A000602" "0005" "08"),
    (commands.ApplicationBlock(H("C1C2C3C4")), "841E000004" "C1C2C3C4"),
    (commands.ApplicationUnblock(H("C1C2C3C4")), "8418000004" "C1C2C3C4"),
]


@pytest.mark.parametrize("command, wire", APDUS, ids=[type(c).__name__ for c, _ in APDUS])
def test_each_command_builds_the_profiles_bytes(command, wire):
    assert command.command().to_bytes() == H(wire)


# ------------------------------------------------------------------ responses

TUNION_ISSUER = H("1100000000000000" "01" "03" "03101000000000000001" "20240229" "20340228" "0000")


def test_select_parses_the_t_union_fci_issuer_data():
    fci_bytes = Tlv(0x6F, Tlv(0x84, profile.AID_TUNION).to_bytes() + Tlv(0xA5, Tlv(0x9F0C, TUNION_ISSUER).to_bytes()).to_bytes())
    fci = commands.select_tunion().send(ScriptedCard(fci_bytes.to_bytes().hex() + "9000"))
    assert fci.df_name == profile.AID_TUNION
    assert fci.tunion == commands.TUnionIssuerData(
        issuer_id="1100000000000000",
        app_type=0x01,
        version=0x03,
        app_serial="03101000000000000001",
        start_date=dt.date(2024, 2, 29),
        expiry_date=dt.date(2034, 2, 28),
        discretionary=bytes(2),
    )
    assert fci.tunion.to_bytes() == TUNION_ISSUER


def test_a_select_without_fci_is_an_empty_fci():
    assert commands.select_ssse().send(ScriptedCard("9000")) == commands.Fci()


@pytest.mark.parametrize(
    "command, answer, value",
    [
        (commands.GetChallenge(), "0102030405060708", H("0102030405060708")),
        (commands.GetBalance(), "000186A0", 100_000),
        (
            commands.GetChipInfo(),
            "5342000000000001" "03" "0301",
            commands.ChipInfo(H("5342000000000001"), profile.LifeState.PERSONALISED, H("0301")),
        ),
        (
            commands.InitializeForPurchase(1, 300, TERM),
            "00000BB8" "0005" "000000" "01" "04" "A1B2C3D4",
            commands.PurchaseInit(3000, 5, 0, 1, Algorithm.SM4, H("A1B2C3D4")),
        ),
        (
            commands.DebitForPurchase(H("00000102"), DATE_TIME, H("A1A2A3A4")),
            "11111111" "22222222",  # TAC first, then MAC2: the profile's order
            commands.PurchaseResult(tac=H("11111111"), mac2=H("22222222")),
        ),
        (
            commands.InitializeForLoad(1, 5000, TERM),
            "000003E8" "0002" "01" "00" "0F0E0D0C" "33333333",
            commands.LoadInit(1000, 2, 1, Algorithm.DES3, H("0F0E0D0C"), H("33333333")),
        ),
        (commands.CreditForLoad(DATE_TIME, H("B1B2B3B4")), "44444444", H("44444444")),
        (
            commands.GetTransactionProve(0x06, 5),
            "55555555" "66666666",  # MAC2 first, then TAC
            commands.Prove(mac2=H("55555555"), tac=H("66666666")),
        ),
        (commands.ReadRecord(profile.SFI_EF05, 0x07), "0709" + b"188347080".hex(), Tlv(0x07, b"188347080")),
        (commands.ReadRecord(profile.SFI_TU_LOG, 1, by_tag=False), "00" * 23, bytes(23)),
        (commands.ReadBinary(profile.SFI_TU_ISSUER, 0, 30), TUNION_ISSUER.hex(), TUNION_ISSUER),
        (commands.UpdateBinary(profile.SFI_TU_MANAGEMENT, 0, bytes(64)), "", None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, commands.ApduCommand) else "",
)
def test_each_command_parses_its_answer(command, answer, value):
    card = ScriptedCard(answer + "9000")
    assert commands.run(card, command) == value
    assert card.sent == [command.command().to_bytes()]


@pytest.mark.parametrize(
    "command, answer",
    [
        (commands.GetBalance(), "000186"),
        (commands.GetChipInfo(), "5342000000000001" "07" "0301"),  # no such life state
        (commands.InitializeForPurchase(1, 300, TERM), "00000BB8" "0005" "000000" "01" "99" "A1B2C3D4"),  # unknown algorithm
        (commands.ReadRecord(profile.SFI_EF05, 0x07), "0609" + b"188347080".hex()),  # another tag than asked for
        (commands.ReadRecord(profile.SFI_EF05, 0x07), "0709" + b"1883".hex()),  # truncated TLV
        (commands.select_tunion(), "840100"),  # not an FCI template
        (commands.Erase(), "00"),  # a write that answers data
    ],
)
def test_an_answer_that_does_not_fit_the_profile_is_malformed(command, answer):
    with pytest.raises(commands.MalformedResponse):
        command.send(ScriptedCard(answer + "9000"))


def test_t0_chaining_is_followed_transparently():
    card = ScriptedCard("610B", "5342000000000001" "01" "0301" "9000")
    assert commands.GetChipInfo().send(card).life_state is profile.LifeState.BLANK
    assert card.sent[1] == H("00C000000B")


# ------------------------------------------------------------------ status words


@pytest.mark.parametrize(
    "sw, error",
    [
        ("6982", status_words.SecurityNotSatisfied),
        ("6983", status_words.AuthenticationBlocked),
        ("6985", status_words.ConditionsNotSatisfied),
        ("6A82", status_words.FileNotFound),
        ("6A83", status_words.RecordNotFound),
        ("6700", status_words.WrongLength),
        ("9302", status_words.MacError),
        ("9303", status_words.ApplicationLocked),
        ("9401", status_words.InsufficientBalance),
        ("9406", status_words.MacNotAvailable),
        ("63C2", status_words.WrongPin),
        ("6A88", status_words.ReferencedDataNotFound),
        ("6A84", status_words.CardStatus),  # one without a class of its own
    ],
)
def test_a_failed_status_word_raises_its_typed_exception(sw, error):
    with pytest.raises(error) as caught:
        commands.GetBalance().send(ScriptedCard(sw))
    assert caught.value.sw == int(sw, 16)


def test_6a88_has_iso_s_name_for_whatever_reference_is_missing():
    assert status_words.describe(0x6A88) == "referenced data not found (key, PIN or data object)"
    assert status_words.KEY_NOT_FOUND == status_words.REFERENCED_DATA_NOT_FOUND == 0x6A88


def test_a_wrong_pin_says_how_many_tries_are_left():
    with pytest.raises(status_words.WrongPin) as caught:
        commands.Verify("000000").send(ScriptedCard("63C1"))
    assert caught.value.tries_left == 1


@pytest.mark.parametrize("sw, tries", [("63C3", 3), ("63C1", 1), ("6983", 0), ("9000", 3)])
def test_pin_tries_left_reads_the_counter_without_spending_a_try(sw, tries):
    assert commands.PinTriesLeft().send(ScriptedCard(sw)) == tries


def test_pin_tries_left_still_raises_other_failures():
    with pytest.raises(status_words.ConditionsNotSatisfied):
        commands.PinTriesLeft().send(ScriptedCard("6985"))


@pytest.mark.parametrize("pin", ["12345", "1234567", "12345a", "１２３４５６", ""])
def test_a_pin_is_six_ascii_digits(pin):
    with pytest.raises(InvalidInput) as caught:
        commands.Verify(pin)
    assert caught.value.field == "pin"


def test_pins_do_not_appear_in_reprs():
    assert "123456" not in repr(commands.Verify("123456")) + repr(commands.ResetRetryCounter("123456"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: commands.WriteKey(profile.KeyUsage.LOAD, 1, Algorithm.SM4, 1, bytes(8)),
        lambda: commands.InitializeForPurchase(1, 300, TERM[:5]).command(),
        lambda: commands.DebitForPurchase(H("0102"), DATE_TIME, H("A1A2A3A4")),
        lambda: commands.CreditForLoad(DATE_TIME[:4], H("B1B2B3B4")),
        lambda: commands.UpdateCappDataCache(1, profile.SFI_TU_CAPP, bytes(47)),
        lambda: commands.ApplicationBlock(H("C1C2")),
    ],
)
def test_fields_of_the_wrong_size_cannot_make_a_command(make):
    with pytest.raises(ValueError):
        make()


# ------------------------------------------------------------------ authentication helpers


@pytest.mark.parametrize("alg", list(Algorithm))
def test_external_authenticate_encrypts_the_challenge_padded_to_a_block(alg):
    card = ScriptedCard("0102030405060708" "9000", "9000")
    commands.external_authenticate(card, KEY, 0x00, alg)
    challenge = H("0102030405060708")
    expected = encrypt_ecb(alg, KEY, challenge + bytes(alg.block - 8))
    assert card.sent == [H("0084000008"), commands.ExternalAuthenticate(0x00, expected).command().to_bytes()]
    assert len(expected) == alg.block


def test_a_wrong_authentication_key_raises_with_the_tries_left():
    with pytest.raises(status_words.WrongPin) as caught:
        commands.external_authenticate(ScriptedCard("0102030405060708" "9000", "63CE"), KEY, 0x00)
    assert caught.value.tries_left == 14


def test_block_and_unblock_macs_cover_the_challenge_and_their_own_header():
    challenge = H("1112131415161718")
    card = ScriptedCard(challenge.hex() + "9000", "9000", challenge.hex() + "9000", "9000")
    commands.block_application(card, KEY)
    commands.unblock_application(card, KEY)
    block_mac = cbc_mac(Algorithm.SM4, KEY, challenge + H("841E000004"))
    unblock_mac = cbc_mac(Algorithm.SM4, KEY, challenge + H("8418000004"))
    assert card.sent[1] == H("841E000004") + block_mac
    assert card.sent[3] == H("8418000004") + unblock_mac
    assert block_mac != unblock_mac


# ------------------------------------------------------------------ transaction log

RECORD = "0005" "000000" "0000012C" "06" "110000000001" "20250109" "070503"


def test_a_log_record_parses_into_its_fields():
    record = commands.TransactionLogRecord.parse(H(RECORD))
    assert record == commands.TransactionLogRecord(
        counter=5,
        overdraft=0,
        amount=300,
        txn_type=0x06,
        terminal_no=TERM,
        at=dt.datetime(2025, 1, 9, 7, 5, 3),
    )
    assert record.type_name == "purchase"


@pytest.mark.parametrize("raw", [RECORD[:-2], RECORD[:-6] + "25" + RECORD[-4:]])
def test_a_log_record_of_the_wrong_size_or_date_is_malformed(raw):
    with pytest.raises(commands.MalformedResponse):
        commands.TransactionLogRecord.parse(H(raw))


def _log(n: int) -> list[str]:
    return [RECORD[:2] + f"{n - i:02X}" + RECORD[4:] + "9000" for i in range(n)]


@pytest.mark.parametrize(
    "answers, counters",
    [
        (_log(2) + ["00" * 23 + "9000"], [2, 1]),  # stops at a never-written record
        (_log(3) + ["6A83"], [3, 2, 1]),  # stops at a missing record
        (["6A83"], []),
        (_log(10), list(range(10, 0, -1))),  # a full cyclic file: no 11th read
    ],
)
def test_the_log_is_read_newest_first_until_its_end(answers, counters):
    card = ScriptedCard(*answers)
    assert [r.counter for r in commands.read_transaction_log(card)] == counters
    assert not card.answers
    assert card.sent[0] == H("00B201C400")
