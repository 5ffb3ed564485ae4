"""Bounds on money: the most a cash deposit, a financial account and an e-purse may hold.

Every amount that enters the service (typed by staff, read from a file, sent by a
terminal) is checked against these at the service boundary, so no sum the databases
keep can come near SQLite's 64-bit integer (``money.MAX_FEN``, about 9.2 × 10^18 fen).
The figures and where they come from (docs/protections/money-bounds.md):

- **e-purse**: ¥1,000.00, the card profile's maximum balance (docs/card-profile.md). It is
  the usual T-Union card maximum, and the PBOC's limit for an anonymous prepaid card
  (《支付机构预付卡业务管理办法》, PBOC announcement [2012] No. 12: 单张不记名预付卡资金限额
  不超过1000元) — the purse is anonymous (不记名, 不挂失): whoever holds the card spends it.
- **cash deposit**: less than ¥50,000.00. A cash deposit of ¥50,000 or more is a
  large-value transaction the bank must report to the anti-money-laundering centre
  (《金融机构大额交易和可疑交易报告管理办法》, PBOC Order [2016] No. 3, art. 5(1): 当日单笔或者
  累计交易人民币5万元以上的现金缴存). The simulated counter files no such report, so it
  takes a deposit only below that threshold.
- **financial account**: ¥1,000,000.00. This is the simulator's own policy, not a
  regulation (a bank's class I account has no legal ceiling): far above what subsidies,
  deposits and refunds put in a social security card's account, and 10^10 times below
  the integer limit, so balances and till totals can never overflow.
- **any other single amount** a person or a file gives (a subsidy row, a control
  total's row): at most the account's maximum, since no account could take more.
"""

from __future__ import annotations

from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.money import format_fen
from sbcard.domain.purse_load import MAX_BALANCE_FEN as MAX_PURSE_BALANCE_FEN

LARGE_CASH_FEN = 5_000_000  # ¥50,000.00: the large-value cash reporting threshold (含5万元)
MAX_CASH_DEPOSIT_FEN = LARGE_CASH_FEN - 1  # ¥49,999.99
MAX_ACCOUNT_BALANCE_FEN = 100_000_000  # ¥1,000,000.00 (the simulator's policy)
MAX_AMOUNT_FEN = MAX_ACCOUNT_BALANCE_FEN  # any single amount given to the service
MAX_KEY_LENGTH = 64  # an idempotency key (a slip number, a txn id): longer is not a slip number

__all__ = ["LARGE_CASH_FEN", "MAX_ACCOUNT_BALANCE_FEN", "MAX_AMOUNT_FEN", "MAX_CASH_DEPOSIT_FEN", "MAX_KEY_LENGTH",
           "MAX_PURSE_BALANCE_FEN", "check_cash_deposit", "check_credit", "idempotency_key"]


def check_cash_deposit(amount_fen: int, field: str = "--amount") -> None:
    """Refuse a cash deposit at or over the large-value threshold (RuleRefused, exit 1)."""
    if amount_fen > MAX_CASH_DEPOSIT_FEN:
        raise RuleRefused(
            "amount.cash_deposit_max",
            f"a cash deposit is at most {format_fen(MAX_CASH_DEPOSIT_FEN)}: {format_fen(amount_fen)} is a large-value "
            f"cash transaction ({format_fen(LARGE_CASH_FEN)} or more, 大额现金交易) the counter does not take", field)


def check_credit(balance_fen: int, amount_fen: int, field: str, what: str = "the account") -> None:
    """Refuse a credit that would take a financial account past its maximum (RuleRefused, exit 1)."""
    if balance_fen + amount_fen > MAX_ACCOUNT_BALANCE_FEN:
        raise RuleRefused(
            "account.max_balance",
            f"{what} holds {format_fen(balance_fen)}; {format_fen(amount_fen)} more would pass a financial account's "
            f"maximum of {format_fen(MAX_ACCOUNT_BALANCE_FEN)}", field)


def idempotency_key(value: str | None, field: str) -> str | None:
    """The key stripped, None if none was given; an empty or blank key is refused, never ignored.

    A blank ``--txn-id`` that silently became "no key" would post a retry twice: the one
    who typed it meant to make the retry safe.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("key.format", f"an idempotency key is text, got {type(value).__name__}", field)
    key = value.strip()
    if not key:
        raise InvalidInput("key.blank", "the idempotency key is empty or blank: give the slip number, or leave the "
                           "option out to have one assigned", field)
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput("key.format", f"an idempotency key is at most {MAX_KEY_LENGTH} printable characters",
                           field)
    return key
