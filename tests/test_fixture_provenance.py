"""Every figure in ``fixtures/`` says where it comes from (issue 16, item 7).

A walk over the folders' CSV files: each file is either a file of figures, listed in
``FIGURES`` with the columns that hold them, or listed in ``NOT_FIGURES`` with the reason
it holds none — so a new file of figures cannot slip in unchecked. Every row of a figures
file that fills a figure column has a ``source`` (ids of its folder's ``sources.csv``)
and a ``confidence`` that load (``sbcard.reference.provenance``: a known id, a known
confidence, a source for ``official``/``secondary``, an official source for ``official``).

To add a folder: put it in ``FOLDERS``, its files of figures in ``FIGURES`` and the rest
in ``NOT_FIGURES``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping

import pytest

from sbcard.domain.errors import SbcardError
from sbcard.reference import fixtures_dir, load_sources, provenance

# The folders walked (each has its own sources.csv).
FOLDERS: tuple[str, ...] = ("subsidies", "transit", "venues", "medical")

# file (relative to fixtures/) → the columns holding figures (amounts, caps, rates, prices…)
FIGURES: dict[str, tuple[str, ...]] = {
    "subsidies/items.csv": ("cap",),
    "subsidies/generate_rules.csv": ("amount",),
    "transit/operators.csv": ("fare_rule",),
    "transit/fare_rules.csv": ("what",),
    "transit/concessions.csv": ("min_age", "max_full_fare_fen", "start", "end"),
    "transit/bj_bus_lines.csv": ("km",),
    "transit/tj_bus_lines.csv": ("full_fare_fen",),
    "transit/he_sjz_bus_lines.csv": ("full_fare_fen",),
    "transit/he_lf_bus_lines.csv": ("full_fare_fen",),
    "venues/venues.csv": ("price_fen", "off_peak_price_fen"),
    "venues/prices.csv": ("price_fen", "percent", "age_from", "age_to"),
    "medical/policies.csv": ("deductible_fen_l1", "ratio_pct_l1", "cap_fen", "personal_account_annual_fen"),
    "medical/catalogue.csv": ("price_fen", "self_first_pct"),
    "medical/cross_region.csv": ("cut_points",),
    "medical/national.csv": ("max_cut_points",),
}

# Files whose rows hold a second group of figures with a provenance of their own:
# file → (figure columns, source column, confidence column).
SECOND_FIGURES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "venues/venues.csv": (("open_from", "open_to", "daily_limit", "loan_limit", "loan_days", "fine_fen_per_day",
                           "fine_cap_fen"), "rules_source", "rules_confidence"),
    "medical/policies.csv": (("band_fen", "band_ratio_pct"), "band_source", "band_confidence"),
}

# file, or folder ending in "/", (relative to fixtures/) → why it holds no figures to source
NOT_FIGURES: dict[str, str] = {
    "subsidies/sources.csv": "the sources themselves",
    "subsidies/samples/": "sample batch files: what a department sends in, not reference figures",
    "transit/sources.csv": "the sources themselves",
    "venues/sources.csv": "the sources themselves",
    "medical/sources.csv": "the sources themselves",
    "transit/bj_subway.csv": "the network's stations (real names) and distances, illustrative as a whole "
                             "(fixtures/transit/README.md): a fare worked out from stations says illustrative",
    "transit/tj_metro.csv": "the network's stations and their order (sections); no fare figures",
    "medical/hospitals.csv": "designated hospitals and their levels, not figures; `illustrative` marks examples",
}


def _csv_files(folder: str) -> list[str]:
    root = fixtures_dir()
    return sorted(str(path.relative_to(root)) for path in (root / folder).rglob("*.csv"))


def _excluded(name: str) -> bool:
    return name in NOT_FIGURES or any(name.startswith(k) for k in NOT_FIGURES if k.endswith("/"))


def _rows(name: str) -> list[dict[str, str]]:
    with (fixtures_dir() / name).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def problems(name: str, columns: Iterable[str], rows: Iterable[Mapping[str, str | None]],
             source: str = "source", confidence: str = "confidence") -> list[str]:
    """What is wrong with the provenance of ``rows`` of ``name`` (``<folder>/<file>.csv``); empty when nothing."""
    folder = name.split("/", 1)[0]
    columns = tuple(columns)
    found: list[str] = []
    for line, row in enumerate(rows, start=2):
        missing = [c for c in columns if c not in row]
        if missing:
            found.append(f"{name} line {line}: no figure column {', '.join(missing)}")
            continue
        if not any((row[c] or "").strip() for c in columns):
            continue  # no figure on this row
        if source not in row or confidence not in row:
            found.append(f"{name} line {line}: a figure without {source} and {confidence} columns")
            continue
        try:
            provenance(folder, row[source] or "", row[confidence] or "", where=f"{name} line {line}")
        except SbcardError as e:
            found.append(e.message)
    return found


@pytest.mark.parametrize("folder", FOLDERS)
def test_fixture_provenance_every_csv_is_a_figures_file_or_says_why_not(folder):
    files = _csv_files(folder)
    assert files, f"fixtures/{folder} has no CSV files"
    unlisted = [name for name in files if name not in FIGURES and not _excluded(name)]
    assert not unlisted, f"list these in FIGURES (with their figure columns) or NOT_FIGURES: {unlisted}"
    listed = [name for name in FIGURES if name.startswith(f"{folder}/")]
    assert set(listed) <= set(files), f"FIGURES names files that are not there: {set(listed) - set(files)}"


@pytest.mark.parametrize(("name", "columns"), sorted(FIGURES.items()))
def test_fixture_provenance_every_figure_names_a_source_and_a_confidence_that_load(name, columns):
    rows = _rows(name)
    assert rows, f"fixtures/{name} has no rows"
    assert problems(name, columns, rows) == []


@pytest.mark.parametrize(("name", "group"), sorted(SECOND_FIGURES.items()))
def test_fixture_provenance_a_second_group_of_figures_names_its_own_source(name, group):
    columns, source, confidence = group
    assert problems(name, columns, _rows(name), source, confidence) == []


@pytest.mark.parametrize("folder", FOLDERS)
def test_fixture_provenance_every_source_is_cited(folder):
    cited = {part.strip() for name in FIGURES if name.startswith(f"{folder}/") for row in _rows(name)
             for key in ("source", SECOND_FIGURES.get(name, ((), "source", ""))[1])
             for part in (row.get(key) or "").split(";") if part.strip()}
    unused = set(load_sources(folder)) - cited
    assert not unused, f"fixtures/{folder}/sources.csv lists sources no figure cites: {sorted(unused)}"


@pytest.mark.parametrize(("row", "words"), [
    ({"cap": "800.00", "source": "", "confidence": "official"}, "names its source"),
    ({"cap": "800.00", "source": "no-such-source", "confidence": "illustrative"}, "unknown source no-such-source"),
    ({"cap": "800.00", "source": "", "confidence": ""}, "confidence ''"),
    ({"cap": "800.00", "illustrative": "1"}, "without source and confidence columns"),
    ({"other": "x"}, "no figure column cap"),
])
def test_fixture_provenance_the_check_finds_a_figure_that_does_not_say_where_from(row, words):
    found = problems("subsidies/items.csv", ("cap",), [row])
    assert len(found) == 1 and words in found[0] and "subsidies/items.csv line 2" in found[0]


def test_fixture_provenance_a_row_without_figures_needs_no_source():
    assert problems("subsidies/items.csv", ("cap",), [{"cap": "", "source": "", "confidence": ""}]) == []
