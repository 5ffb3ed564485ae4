"""``sbcard ids check``: what a value is, whether it is valid, what it encodes."""

from __future__ import annotations

import sys

import click

from sbcard.cli.context import EXIT_OK, EXIT_USAGE, AppContext, with_app
from sbcard.cli.output import emit_json, fields, named_region
from sbcard.clock import BEIJING
from sbcard.domain.identify import identify
from sbcard.reference import load_regions

_KIND_WORDS = {
    "citizen_id": "citizen ID (社会保障号码)",
    "card_number": "card number (社会保障卡卡号)",
    "card_id_code": "card identification code (卡识别码)",
    "bank_account": "bank account number",
    "region": "region code (GB/T 2260)",
    "unknown": "unknown",
}


@click.group()
def ids() -> None:
    """Identifiers: citizen IDs, card numbers, 卡识别码, bank accounts, region codes."""


@ids.command("check")
@click.argument("value")
@click.option("--show-personal", is_flag=True, help="Show a citizen ID in full (human output masks it).")
@with_app
def check(app: AppContext, value: str, show_personal: bool) -> None:
    """Tell what VALUE is and whether it is valid; exit 0 if valid, 2 if not."""
    today = app.clock.now().astimezone(BEIJING).date()  # a citizen ID born after today is invalid
    result = identify(value, load_regions(), today)
    if app.json:
        emit_json(result)
    else:
        shown = dict(result)
        if shown["kind"] == "citizen_id" and not show_personal:
            from sbcard.domain.masking import mask_citizen_id

            shown["value"] = mask_citizen_id(shown["value"])
        pairs = [("kind", _KIND_WORDS.get(shown["kind"], shown["kind"])), ("valid", "yes" if shown["valid"] else "no")]
        if shown.get("reason"):
            pairs.append(("reason", shown["reason"]))
        pairs += [(k, named_region(v) if k in ("region", "province") and v else v) for k, v in shown.items()
                  if k not in ("kind", "valid", "reason")]
        click.echo(fields(pairs))
    sys.exit(EXIT_OK if result["valid"] else EXIT_USAGE)
