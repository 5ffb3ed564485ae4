"""``state.dumps`` (made from memoised parts) writes exactly what encoding ``to_json`` writes.

A card saves its whole image at every commit, so ``dumps`` keeps the text of each part
with the value object it was made from and makes again only what a commit replaced.
These tests hold it to the plain encoding after every command of a card's life, after
values replaced by hand (as tools and tests do), after a failed save's undo, and on
states with unusual but valid contents.
"""

from __future__ import annotations

import random
from pathlib import Path

import attrs

from sbcard.chip import profile
from sbcard.chip.profile import KeyUsage
from terminals.emulator import card_file, image, image_codec, testing
from terminals.emulator.card import VirtualCard


def _plain(state: image.CardState) -> bytes:
    return image_codec._ENCODER.encode(image_codec.to_json(state)).encode("ascii")


def _same(state: image.CardState) -> None:
    assert image_codec.dumps(state) == _plain(state)
    assert image_codec.dumps(state) == _plain(state)  # from the memo this time


def test_every_save_of_a_card_is_the_plain_encoding(tmp_path: Path, monkeypatch) -> None:
    saved: list[tuple[bytes, bytes]] = []
    real = card_file.CardFile.save

    def checked(self, state, *, durable=False):
        saved.append((image_codec.dumps(state), _plain(state)))
        real(self, state, durable=durable)

    monkeypatch.setattr(card_file.CardFile, "save", checked)
    card = testing.personalised_card(tmp_path / "c.card", balance_fen=50_000, rng=random.Random(3))
    for i in range(14):  # past the cyclic log's length
        testing.purchase(card, 100 + i)
    testing.purchase(card, 7, capp_records={1: bytes(range(profile.TU_CAPP_RECORD_LEN))})
    testing.load(card, 1_000)
    card.close()
    assert len(saved) > 20
    assert all(fast == plain for fast, plain in saved)
    again = VirtualCard.load(tmp_path / "c.card")
    _same(again.state)
    again.close()


def test_values_replaced_by_hand_are_written(card: VirtualCard) -> None:
    state = card.state
    _same(state)
    state.purse = attrs.evolve(state.purse, balance=state.purse.balance - 1, offline_counter=7)
    _same(state)
    state.logs[("TU", 0x18)] = (b"\x01" * 23,) + state.logs.get(("TU", 0x18), ())
    _same(state)
    state.logs[("DF04", 0x08)] = ()
    _same(state)
    del state.logs[("DF04", 0x08)]
    _same(state)
    recs = dict(state.records[("SSSE", 0x05)])
    recs[0x01] = b"\xaa" * len(recs[0x01])
    state.records[("SSSE", 0x05)] = recs
    _same(state)
    state.binaries[("TU", 0x15)] = b"\x00" * 30
    _same(state)
    ref = next(iter(state.keys))
    state.keys[ref] = attrs.evolve(state.keys[ref], version=2)
    _same(state)
    state.keys[("TU", KeyUsage.TAC, 2)] = image.KeyEntry(4, 1, b"\x11" * 16)
    _same(state)
    state.locked = frozenset({"TU", "MF"})
    _same(state)
    state.pin = None
    _same(state)
    state.pin = image.Pin(b"\x12\x34\x56", 1)
    _same(state)
    state.last_purchase = image.Prove(6, 3, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")
    state.last_load = None
    _same(state)
    state.ext_auth_tries = 0
    state.life_state = profile.LifeState.PERSONALISING
    _same(state)


def test_a_copy_made_by_evolve_starts_its_own_memo(card: VirtualCard) -> None:
    state = card.state
    image_codec.dumps(state)
    other = attrs.evolve(state, ext_auth_tries=1)
    assert other._text == {} and other == attrs.evolve(state, ext_auth_tries=1)
    _same(other)
    _same(state)


def test_random_replacements_keep_the_text_right(card: VirtualCard) -> None:
    rng = random.Random(11)
    state = card.state
    refs = list(state.records)
    for _ in range(400):
        roll = rng.random()
        if roll < 0.3:
            ref = rng.choice(refs)
            recs = dict(state.records[ref])
            n = rng.choice(list(recs))
            recs[n] = rng.randbytes(len(recs[n]))
            state.records[ref] = recs
        elif roll < 0.5:
            ref = ("TU", 0x18)
            state.logs[ref] = (rng.randbytes(23),) + state.logs.get(ref, ())[:9]
        elif roll < 0.6:
            old = dict(state.records)
            state.records.clear()
            for ref in rng.sample(list(old), len(old)):  # the same map, another order
                state.records[ref] = old[ref]
        elif roll < 0.7:
            state.binaries[("TU", 0x17)] = rng.randbytes(rng.randint(0, 64))
        else:
            state.purse = attrs.evolve(state.purse, balance=rng.randint(0, state.purse.max_balance))
        _same(state)
