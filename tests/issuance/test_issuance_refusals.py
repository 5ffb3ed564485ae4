"""Bad input and refusals: one line on stderr, a non-zero exit, nothing changed anywhere.

"Nothing changed" is checked on every database (content digests) and on the bytes of
every card file involved.
"""

from __future__ import annotations

import pytest
from issuance_world import PEOPLE, ZHANG


def apply_args(who: str = "zhang", outlet: str = "TJ-120103-01", operator: str = "TJ-C1") -> list[str]:
    return ["card", "apply", "--citizen-id", PEOPLE[who].citizen_id, "--outlet", outlet, "--operator", operator]


def refused(sbcard, state, cards, args, exit_code: int, words: str) -> None:
    before = state(*cards)
    code, out, err, _ = sbcard(*args)
    assert code == exit_code, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err, err
    assert "Traceback" not in err
    assert state(*cards) == before


@pytest.mark.parametrize(
    "args, exit_code, words",
    [
        (["card", "apply", "--citizen-id", "120103198001011238", "--outlet", "TJ-120103-01", "--operator", "TJ-C1"],
         2, "--citizen-id: check character"),
        (["card", "apply", "--citizen-id", "12010319800101", "--outlet", "TJ-120103-01", "--operator", "TJ-C1"],
         2, "--citizen-id"),
        (["card", "apply", "--citizen-id", "120103299001011238", "--outlet", "TJ-120103-01", "--operator", "TJ-C1"],
         2, "--citizen-id"),
        (apply_args(outlet="TJ-120103-99"), 2, "no outlet TJ-120103-99"),
        (apply_args(outlet="TIANJIN-1"), 2, "--outlet"),
        (apply_args(outlet="TJ-120103-02"), 1, "no blank cards in stock"),
        (apply_args(operator="NOBODY"), 2, "--operator"),
        (apply_args(operator="BJ-C1"), 2, "--operator"),  # a Beijing operator at a Tianjin outlet
        (apply_args(outlet="BJ-110105-01", operator="BJ-F1"), 1, "finance"),
        (["card", "apply", "--citizen-id", "120103199001011231", "--outlet", "TJ-120103-01", "--operator", "TJ-C1"],
         2, "not in the registry"),
        (apply_args() + ["--online"], 2, "--address"),
        (apply_args() + ["--guardian-id", PEOPLE["mother"].citizen_id], 1, "not recorded as the applicant's guardian"),
    ],
)
def test_applications_refused(sbcard, receive, state, args, exit_code, words):
    receive("TJ-120103-01")
    receive("BJ-110105-01")
    refused(sbcard, state, [], args, exit_code, words)


def test_a_second_application_for_the_same_person_is_refused(sbcard, receive, state):
    receive("TJ-120103-01")
    receive("BJ-110105-01")
    assert sbcard(*apply_args())[0] == 0
    refused(sbcard, state, [], apply_args(), 1, "already has an open application")
    refused(sbcard, state, [], apply_args(outlet="BJ-110105-01", operator="BJ-C1"), 1, "open application")


@pytest.fixture
def application(sbcard, receive) -> str:
    """Zhang's open application at TJ-120103-01, whose stock holds one blank."""
    receive("TJ-120103-01")
    code, out, err, data = sbcard(*apply_args(), "--json")
    assert code == 0, err
    return data["application_id"]


def issue_args(application: str, reader: str, operator: str = "TJ-C1") -> list[str]:
    return ["card", "issue", application, "--reader", reader, "--operator", operator]


def test_a_reader_without_a_card(sbcard, state, application, tmp_path):
    refused(sbcard, state, [], issue_args(application, f"emulator:{tmp_path / 'none.card'}"), 1, "no card")


def test_a_card_of_another_regions_stock(sbcard, receive, state, application):
    [beijing_blank] = receive("BJ-110105-01")
    refused(sbcard, state, [beijing_blank], issue_args(application, f"emulator:{beijing_blank}"), 1,
            "belongs to the stock of BJ-110105-01 (Beijing)")


def test_a_card_of_another_outlets_stock(sbcard, receive, state, application):
    [other] = receive("TJ-120103-02")
    refused(sbcard, state, [other], issue_args(application, f"emulator:{other}"), 1, "stock of TJ-120103-02")


def test_a_blank_in_no_stock(sbcard, state, application, tmp_path):
    stray = tmp_path / "stray.card"
    assert sbcard("card", "blank", "--out", str(stray))[0] == 0
    refused(sbcard, state, [stray], issue_args(application, f"emulator:{stray}"), 1, "in no outlet's stock")


def test_a_card_that_is_not_blank(sbcard, receive, state, application):
    [blank] = receive("TJ-120103-01")
    assert sbcard(*issue_args(application, f"emulator:{blank}"))[0] == 0
    receive("TJ-120103-01")
    code, out, err, other = sbcard(*apply_args("mother"), "--json")
    assert code == 0, err
    refused(sbcard, state, [blank], issue_args(other["application_id"], f"emulator:{blank}"), 1, "was issued as card")


@pytest.mark.parametrize(
    "args, exit_code, words",
    [
        (["card", "issue", "TJ-A-20250301-000099"], 2, "no application TJ-A-20250301-000099"),
        (["card", "issue", "A-1"], 2, "APPLICATION_ID"),
        (["card", "issue", "{app}", "--operator", "NOBODY"], 2, "--operator"),
        (["card", "issue", "{app}", "--reader", "usb:1"], 2, "reader"),
    ],
)
def test_issuance_refused_before_the_card_is_touched(sbcard, receive, state, application, args, exit_code, words):
    [blank] = receive("TJ-120103-01")
    args = [a.format(app=application) for a in args]
    args += [] if "--reader" in args else ["--reader", f"emulator:{blank}"]
    args += [] if "--operator" in args else ["--operator", "TJ-C1"]
    refused(sbcard, state, [blank], args, exit_code, words)


@pytest.fixture
def issued(sbcard, receive) -> tuple[str, object]:
    [blank] = receive("TJ-120103-01")
    code, out, err, data = sbcard(*apply_args(), "--json")
    code, out, err, card = sbcard(*issue_args(data["application_id"], f"emulator:{blank}"), "--json")
    assert code == 0, err
    return card["card_number"], blank


@pytest.mark.parametrize(
    "pin, exit_code, words",
    [("123456", 2, "run of digits"), ("111111", 2, "repeated"), ("800101", 2, "birth date"), ("12345", 2, "6 digits")],
)
def test_activation_refuses_a_guessable_pin(sbcard, state, issued, pin, exit_code, words):
    number, blank = issued
    refused(sbcard, state, [blank], ["card", "activate", number, "--pin", pin, "--operator", "TJ-C1"],
            exit_code, words)


def test_activation_refuses_another_card_in_the_reader(sbcard, receive, state, issued):
    number, blank = issued
    [other] = receive("TJ-120103-01")
    code, out, err, data = sbcard(*apply_args("mother"), "--json")
    assert sbcard(*issue_args(data["application_id"], f"emulator:{other}"))[0] == 0
    refused(sbcard, state, [blank, other],
            ["card", "activate", number, "--pin", "147258", "--operator", "TJ-C1", "--reader", f"emulator:{other}"],
            1, f"not {number}")


def test_show_and_history_of_unknown_cards(sbcard, state):
    refused(sbcard, state, [], ["card", "show", "T00000992"], 2, "no card")
    refused(sbcard, state, [], ["card", "show", "T00000"], 2, "CARD_OR_CITIZEN_ID")
    refused(sbcard, state, [], ["card", "show", ZHANG], 2, "holds no card")
    refused(sbcard, state, [], ["card", "history", "T00000992"], 2, "no card")
