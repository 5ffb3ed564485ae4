"""A terminal's PSAM keys rest sealed under the KEK, never in clear in its database (docs/protections/world-and-keys.md)."""

from __future__ import annotations

import sqlite3

import pytest

from sbcard.chip.crypto import Algorithm
from sbcard.domain.errors import InvalidInput
from terminals.apps.terminal_state import TerminalConfig, TerminalState
from terminals.psam import PsamKeySet

CONFIG = TerminalConfig(terminal_id="tj-metro-0003", operator="tj-metro", node="tj", terminal_no="120000000003",
                        psam_id="TJ-PSAM-000003", created_at="2025-03-01T09:30:00+08:00", station="天津站",
                        station_code="12010001", gate="both")
DPK = bytes.fromhex("6F1E2D3C4B5A69788796A5B4C3D2E1F0")
DAMK = bytes.fromhex("0A1B2C3D4E5F60718293A4B5C6D7E8F9")
KEYS = [PsamKeySet("1200000000000000", DPK, DAMK, Algorithm.SM4, 1)]
OTHER_KEK = "11" * 32


def _no_key_in(path) -> bool:
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return all(k not in raw and k.hex().upper().encode() not in raw for k in (DPK, DAMK))


def _stored(directory) -> list[tuple[str, str]]:
    conn = sqlite3.connect(directory / "terminal.db")
    try:
        return conn.execute("SELECT purchase_master, app_maintenance_master FROM psam_keys").fetchall()
    finally:
        conn.close()


def test_a_new_terminal_keeps_its_psam_keys_sealed_and_its_psam_has_them(tmp_path) -> None:
    with TerminalState.create(tmp_path / "t", CONFIG, KEYS) as state:
        assert state.psam()._keys[0x12].purchase_master == DPK
    assert all(v.startswith("siv1:") for row in _stored(tmp_path / "t") for v in row)
    assert _no_key_in(tmp_path / "t" / "terminal.db")


def test_a_terminal_made_with_clear_keys_is_sealed_when_next_opened(tmp_path) -> None:
    TerminalState.create(tmp_path / "t", CONFIG, KEYS).close()
    conn = sqlite3.connect(tmp_path / "t" / "terminal.db", isolation_level=None)
    conn.execute("UPDATE psam_keys SET purchase_master = ?, app_maintenance_master = ?", (DPK.hex().upper(),
                                                                                         DAMK.hex().upper()))
    conn.close()
    with TerminalState.open(tmp_path / "t") as state:
        assert state.psam()._keys[0x12].app_maintenance_master == DAMK
    assert all(v.startswith("siv1:") for row in _stored(tmp_path / "t") for v in row)
    assert _no_key_in(tmp_path / "t" / "terminal.db")


def test_another_kek_does_not_open_them_and_says_so(tmp_path, monkeypatch) -> None:
    TerminalState.create(tmp_path / "t", CONFIG, KEYS).close()
    monkeypatch.setenv("SBCARD_KEK", OTHER_KEK)
    with TerminalState.open(tmp_path / "t") as state, pytest.raises(InvalidInput) as refused:
        state.psam()
    assert (refused.value.code, refused.value.field, refused.value.exit_code) == ("keys.wrong_kek", "SBCARD_KEK", 2)
    assert "the PSAM's purchase_master of 1200000000000000" in refused.value.message
