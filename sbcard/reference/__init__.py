"""Reference data from ``fixtures/``: the I/O edge in front of the pure domain values.

The domain takes a ``RegionDirectory``; only this module knows it comes from a CSV file.
"""

from __future__ import annotations

import csv
import functools
import os
import sys
from pathlib import Path

from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.regions import Region, RegionDirectory
from sbcard.domain.sources import OFFICIAL, Provenance, Source, cite

ENV_VAR = "SBCARD_FIXTURES"


def fixtures_dir() -> Path:
    """``$SBCARD_FIXTURES``, else the checkout's ``fixtures/``, else the installed copy's."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env)
    in_checkout = Path(__file__).resolve().parents[2] / "fixtures"
    if in_checkout.is_dir():
        return in_checkout
    return Path(sys.prefix) / "share" / "sbcard" / "fixtures"


def why(error: BaseException) -> str:
    """An error's reason as a fixture message shows it: a project error's message; attrs' choice
    validators' sentence without the attribute's internals they carry (``'status' must be in
    ('', 'student') (got 'vip')``); otherwise the error's text."""
    if isinstance(error, SbcardError):
        return error.message
    if isinstance(error, ValueError) and len(error.args) > 1 and isinstance(error.args[0], str):
        return error.args[0]
    return str(error)


def read_csv_rows(name: str) -> list[dict[str, str]]:
    """Rows of ``fixtures/<name>`` as dicts keyed by the header (UTF-8, a BOM tolerated)."""
    path = fixtures_dir() / name
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise SbcardError(
            code="fixture.missing",
            message=f"reference file {path} is missing (set {ENV_VAR} to the fixtures directory)",
        ) from None


@functools.lru_cache(maxsize=None)
def load_regions() -> RegionDirectory:
    """The region directory from ``regions.csv``, read once per process.

    A malformed file is an internal error (exit 3), not the user's bad input.
    """
    rows = read_csv_rows("regions.csv")
    try:
        return RegionDirectory(
            Region(
                code=(row.get("code") or "").strip(),
                name=(row.get("name") or "").strip(),
                level=(row.get("level") or "").strip(),
                parent=(row.get("parent") or "").strip() or None,
            )
            for row in rows
        )
    except InvalidInput as e:
        raise SbcardError(code="fixture.invalid", message=f"regions.csv: {e.message}") from e


@functools.lru_cache(maxsize=None)
def load_ethnicities() -> dict[int, str]:
    """GB/T 3304 ethnicity codes → names, from ``ethnicities.csv`` (01–56, 97, 98)."""
    try:
        return {int(row["code"]): row["name"].strip() for row in read_csv_rows("ethnicities.csv")}
    except (KeyError, ValueError) as e:
        raise SbcardError(code="fixture.invalid", message=f"ethnicities.csv: {e}") from e


SOURCE_COLUMNS = ("id", "title", "issuer", "date", "url", "kind", "note")


@functools.lru_cache(maxsize=None)
def load_sources(folder: str) -> dict[str, Source]:
    """``fixtures/<folder>/sources.csv``: the public documents that folder's figures cite, by id.

    A malformed file (an unknown column value, a repeated id) is an internal error (exit 3).
    """
    name = f"{folder}/sources.csv"
    out: dict[str, Source] = {}
    for n, row in enumerate(read_csv_rows(name), start=2):
        try:
            source = Source(**{k: (row.get(k) or "").strip() for k in SOURCE_COLUMNS if k != "kind"},
                            kind=(row.get("kind") or "").strip() or OFFICIAL)
        except (TypeError, ValueError) as e:
            raise SbcardError("fixture.invalid", f"fixtures/{name} line {n}: {e}") from None
        if source.id in out:
            raise SbcardError("fixture.invalid", f"fixtures/{name} line {n}: source {source.id} is listed twice")
        out[source.id] = source
    return out


def provenance(folder: str, ids_text: str, confidence: str, *, where: str) -> Provenance:
    """A fixture row's ``source`` and ``confidence`` cells, checked against its folder's sources."""
    try:
        return cite(load_sources(folder), ids_text, confidence, where=where)
    except ValueError as e:
        raise SbcardError("fixture.invalid", f"fixtures/{folder}: {e}") from None
