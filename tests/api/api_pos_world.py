"""What the tests of hospitals' points of sale over the host API share: a registered POS and a claim."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from world_template import cli

_MEDICAL = str(Path(__file__).resolve().parents[1] / "medical")
if _MEDICAL not in sys.path:
    sys.path.append(_MEDICAL)

from medical_world import MedicalWorld  # noqa: E402

from sbcard.cli.terminals import terminal_dir  # noqa: E402
from terminals.apps.terminal_state import TerminalState  # noqa: E402

LINES = [["XJ01CAA040", 30, 1250]]  # 30 × ¥12.50


def pos_terminal(home: Path, *args: str) -> tuple[dict, bytes]:
    """``sbcard terminal add ARGS`` (a POS: ``--operator BJH003``): its register row and its credential."""
    code, _, err, added = cli(home, "terminal", "add", *args, "--json")
    assert code == 0, err
    with TerminalState.open(terminal_dir(home, added["terminal"])) as state:
        return added, state.host_credential()


def online_claim(w: MedicalWorld, holder: str, claim_id: str, hospital: str, at: dt.datetime,
                 lines: list = LINES) -> dict:
    """The body of ``POST /host/medical/settle`` for ``holder``'s card at ``hospital``."""
    card = w.cards[holder]
    [row] = w.query(card.node, "SELECT card_id_code FROM cards WHERE card_number = ?", (card.number,))
    return {"claim_id": claim_id, "hospital": hospital, "card_number": card.number,
            "card_id_code": row["card_id_code"], "citizen_id": card.citizen_id, "insured_region": "130102",
            "insurance_type": "employee", "retired": False, "lines": lines, "at": at.isoformat(),
            "use_account": True}
