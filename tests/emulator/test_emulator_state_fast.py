"""The card image's fast roads give exactly what the careful ones give.

A card is loaded and saved at every tap, so ``state.from_json`` first tries a reading
that checks a well-formed image in a few expressions and falls back to the one that
names what is wrong; ``Command.parse`` skips the checks its decoding already made; and
``Fci.parse`` remembers the FCIs it has decoded. These tests hold the fast roads to the
careful ones, on the template card and on many damaged copies of its image.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from sbcard.chip.apdu import Command, MalformedApdu
from sbcard.chip.commands import Fci
from terminals.emulator import card_file, image_codec

ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 3, 4, 15, 16, 255, 256, 65535, 65536, 2**32, 1.5, "", "zz", "00", "0a", "0A",
    "ab" * 8, "ab" * 4, "ab" * 3, "ab" * 2, "12 34", [], [1], ["TU"], ["XX"], {}, {"a": 1}, "TU", "MF/01/01",
]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _outcome(read, doc: Any) -> tuple:
    try:
        return ("ok", read(doc))
    except Exception as e:  # noqa: BLE001 - the kind and the message are what is compared
        return ("error", type(e).__name__, str(e))


def test_a_card_image_reads_the_same_both_ways(card_path: Path) -> None:
    doc = card_file.read_state(card_path)
    assert image_codec._from_json_plain(doc) == image_codec._from_json_checked(doc) == card_file.load(card_path)
    assert image_codec.dumps(image_codec._from_json_plain(doc)) == card_file._current_image(card_path)


def test_damaged_images_are_judged_the_same_both_ways(card_path: Path) -> None:
    base = card_file.read_state(card_path)
    paths = [p for p in _paths(base) if p]
    rng = random.Random(7)
    accepted = 0
    for _ in range(3000):
        doc = copy.deepcopy(base)
        for _ in range(rng.randint(1, 2)):
            path = rng.choice(paths)
            target = doc
            try:
                for k in path[:-1]:
                    target = target[k]
                roll = rng.random()
                if roll < 0.1 and isinstance(target, dict):
                    del target[path[-1]]
                elif roll < 0.2 and isinstance(target, dict):
                    target[rng.choice(["0a", "1A", "zz", "FF", "TU/99", "MF/01/07", "x"])] = target[path[-1]]
                else:
                    target[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
            except (KeyError, IndexError, TypeError):
                pass
        fast, careful = _outcome(image_codec.from_json, doc), _outcome(image_codec._from_json_checked, doc)
        assert fast == careful, json.dumps(doc)
        accepted += fast[0] == "ok"
    assert 0 < accepted < 3000  # both kinds were tried


@pytest.mark.parametrize(
    "raw",
    ["00A4040000", "00A4", "00A40400", "00B2010C00", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
     "805001020B0100000001112233445566", "805001020B01000000011122334455", "8050010200000B0100000001112233445566",
     "00B0000000FFFF", "00B00000000005", "00DC010C000003AABBCC", "00DC010C000003AABBCC0100", "0000000000"],
)
def test_a_parsed_command_is_the_command_it_encodes(raw: str) -> None:
    data = bytes.fromhex(raw)
    try:
        cmd = Command.parse(data)
    except MalformedApdu:
        return
    again = Command(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.le)  # the checked constructor agrees
    assert cmd == again and hash(cmd) == hash(again) and type(cmd.data) is bytes
    assert Command.parse(cmd.to_bytes()) == cmd


def test_an_fci_remembered_is_the_fci_decoded(card_path: Path) -> None:
    raw = bytes.fromhex("6f11840f7378312e73682ec9e7bbe1b1a3d5cf")
    assert Fci.parse(raw) == Fci._decode(raw)
    assert Fci.parse(bytearray(raw)) is Fci.parse(raw)
