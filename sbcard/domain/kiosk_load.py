"""Self-service loads (自助圈存) at a kiosk: what an unattended channel may move, as pure rules.

At a counter a clerk sees the holder and the card; at a kiosk nothing does. The kiosk
proves the holder with the card's PIN (VERIFY, on the card: the PIN never leaves the
kiosk), but a PIN can be watched over a shoulder, so an unattended load is also capped,
on top of the purse's own maximum (``purse_load.MAX_BALANCE_FEN``, ¥1,000.00):

- **per load**: at most ``MAX_LOAD_FEN`` (¥500.00);
- **per card per day**: at most ``MAX_DAY_FEN`` (¥800.00) loaded at kiosks on the same
  Beijing calendar day, counting every kiosk load of the card that day not reversed
  (a pending one counts: its money has left the account).

A card found with a stranger therefore gives up at most ¥800.00 a day through kiosks; the
holder loads more at a counter, where staff see them. The host checks these rules in the
same transaction as the debit (``sbcard.services.transit.kiosk_host``).
"""

from __future__ import annotations

from sbcard.domain.errors import RuleRefused
from sbcard.domain.money import format_fen

MAX_LOAD_FEN = 50_000  # ¥500.00 a load
MAX_DAY_FEN = 80_000  # ¥800.00 a card a day, at kiosks
FIELD = "amount_fen"


def check_unattended_load(amount_fen: int, loaded_today_fen: int) -> None:
    """Refuse (409, field ``amount_fen``) a kiosk load of ``amount_fen`` after ``loaded_today_fen`` today."""
    if amount_fen > MAX_LOAD_FEN:
        raise RuleRefused("kiosk.load_limit", f"a kiosk loads at most {format_fen(MAX_LOAD_FEN)} at a time, not "
                          f"{format_fen(amount_fen)}: load more at a counter", FIELD)
    if loaded_today_fen + amount_fen > MAX_DAY_FEN:
        left = max(0, MAX_DAY_FEN - loaded_today_fen)
        raise RuleRefused("kiosk.daily_limit", f"kiosks load at most {format_fen(MAX_DAY_FEN)} a day onto a card; "
                          f"{format_fen(loaded_today_fen)} loaded today, {format_fen(left)} left: load more at a "
                          "counter", FIELD)
