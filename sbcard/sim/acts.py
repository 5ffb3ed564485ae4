"""The acts: what the people of the plan do during the day, each through the real services and terminals.

One method per kind of event of the day's plan (``plan.Event.kind`` → ``on_<kind>``): a ride
(``on_tap``, loading the purse first if it runs low), an application at a counter, a visit
to a hospital, a venue or a library, a loss, an unblocking, a replacement, a found card
tried on a bus, a region's subsidy batch, a hub link going down or coming back. Each act
does what the CLI's command would do — the services with the simulated clock's ``now``, the
terminal apps driving the person's software card through an in-process reader — and counts
what happened, or why it was refused, in the tally.

``Acts`` is a part of ``sbcard.sim.engine.Simulation``: its methods use the engine's state
(the world, the clock, the cards, the people) and hand taps to its tap lane
(``tap_lane.TapLane.hand_tap``).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sbcard.chip.reader import CardIOError, ReaderError
from sbcard.chip.sw import CardStatus
from sbcard.domain.errors import SbcardError
from sbcard.domain.medical import ClaimLine
from sbcard.domain.outlets import OutletCode
from sbcard.reference import medical as medical_reference
from sbcard.reference.venues import venue
from sbcard.services.accounts import cash, ledger
from sbcard.services.cards import activation, issuance, lifecycle, replacement
from sbcard.services.exchange import links
from sbcard.services.medical import routing
from sbcard.services.subsidies import batch_import, payment
from sbcard.services.transit import purse_host
from sbcard.services.venues import gates as venue_gates
from sbcard.sim import plan
from sbcard.sim.population import Person
from sbcard.sim.tap_lane import PendingTap
from sbcard.sim.validators import closed_reader
from terminals.apps import counter, loader
from terminals.apps.medical import PointOfSale
from terminals.apps.transit import Refused
from terminals.apps.venue import VenueGate

LOW_BALANCE_FEN = 1200  # below this a rider loads the purse before setting off
LOAD_AMOUNTS_FEN = (5000, 10000, 10000, 20000)
PROVINCE = {"bj": "110000", "tj": "120000", "he": "130000"}
SIM_RUNNER = ("sbcard-simulate", 0)  # who the subsidy pay's lease and audit name: the same in every run


class Acts:
    """The day's acts, ``on_<kind>`` per kind of event (a part of ``Simulation``)."""

    # ================================================================ issuance

    def issue_new_card(self, person: Person, outlet: str) -> dict[str, Any] | None:
        """Apply, issue on a blank of ``outlet`` and activate: a card for ``person`` (or None, refused)."""
        assert self.world is not None
        node_outlet = outlet[:2].lower()
        op = self.counter_op(node_outlet)
        guardian = person.guardian_id if person.age_on(self.clock.now().date()) < 16 else None
        try:
            application = issuance.apply(self.world, citizen_id=person.citizen_id, outlet=outlet, operator=op,
                                         now=self.clock.now(), guardian_id=guardian)
        except SbcardError as refused:
            self._refused("apply_refused", person.node, refused)
            return None
        self.tally.count("apply", person.node)
        return self._issue_and_activate(person, application["application_id"], outlet, op,
                                        step=90)

    def _issue_and_activate(self, person: Person, application_id: str, outlet: str, op: str, *,
                            step: int, replace: Any = None) -> dict[str, Any] | None:
        assert self.world is not None
        path = self.take_blank(outlet)
        if path is None:
            self._refused("issue_refused", person.node, None)
            return None
        self.step(step)
        reader = self.reader(path)
        try:
            if replace is not None:
                replace.check_blank(counter.chip_info(reader))
                desk = replace.issuance_desk()
            else:
                desk = issuance.IssuanceDesk(self.world, application_id, operator=op, now=self.clock.now())
            outcome = counter.issue(reader, desk)
        except (SbcardError, CardStatus, CardIOError, ReaderError) as refused:
            self._refused("issue_refused" if replace is None else "replace_refused", person.node, refused)
            return None
        finally:
            closed_reader(reader)
        self.blank_used(outlet)
        record = outcome.record
        number = record["card_number"]
        self.tally.count("issue", person.node)
        card = {"card": number, "path": path, "status": "issued", "balance": 0}
        self.state["cards"][str(person.idx)] = card
        self.step(step)
        try:
            desk = activation.ActivationDesk(self.world, number, operator=op, now=self.clock.now())
            reader = self.reader(path)
            try:
                counter.activate(reader, desk, person.pin)
            finally:
                closed_reader(reader)
        except (SbcardError, CardStatus, CardIOError, ReaderError) as refused:
            self._refused("activate_refused", person.node, refused)
            return card
        card["status"] = "active"
        self.tally.count("activate", person.node)
        return card

    def on_apply(self, event: plan.Event) -> None:
        person = self.people[event.who]
        if self.card_of(person.idx) is not None:
            return
        self.issue_new_card(person, self.outlet_near(person))

    # ================================================================ loads

    def load(self, person: Person, card: dict[str, Any], where: str) -> bool:
        """Load the purse at an outlet's load terminal in ``where``: from the card's account, or, if it is
        short, paid in cash at the counter (现金充值; at another region's counter, which takes no cash for
        this card, cash into the account at a bank branch at home first)."""
        assert self.world is not None
        rng = self._loads_rng
        amount = LOAD_AMOUNTS_FEN[rng.randrange(len(LOAD_AMOUNTS_FEN))]
        if card.get("balance") is not None and card["balance"] + amount > 100_000:
            amount = max(0, 100_000 - card["balance"]) // 100 * 100
            if amount <= 0:
                return False
        db = self.world.region(person.node)
        account = ledger.account_of_card(db, card["card"])
        if account is None:
            return False
        outlet = self.outlet_near(person, where, rng=rng)
        in_cash = ledger.balance(db, account) < amount
        if in_cash and outlet[:2].lower() != card_node(card):
            in_cash = False
            deposit = (amount // 10000 + 2) * 10000
            try:
                cash.deposit(self.world, card_number=card["card"], amount_fen=deposit,
                             operator=self.counter_op(person.node), outlet=self.bank_branch(person.node, person),
                             now=self.step(30))
                self.tally.count("deposit", person.node)
            except SbcardError as refused:
                self._refused("deposit_refused", person.node, refused)
                return False
        terminal_no = load_terminal_no(outlet)
        op = self.counter_op(where)
        tear = self.fault_plan.tear_load()
        for attempt in range(2):
            self.step(40)
            host = self._purse_host(op, outlet, in_cash)
            reader = self.reader(card["path"], tear if attempt == 0 else None)
            try:
                outcome = loader.load(reader, host, amount, terminal_no)
            except CardIOError:
                self.tally.fault("torn_load")
                closed_reader(reader)
                self._recover_load(card, op, outlet, terminal_no)
                continue
            except (SbcardError, CardStatus, ReaderError) as refused:
                self._refused("load_refused", person.node, refused)
                return False
            finally:
                closed_reader(reader)
            card["balance"] = outcome.balance_fen
            self.tally.count("load", person.node)
            return True
        return False

    def _purse_host(self, operator: str, outlet: str, cash: bool) -> Any:
        """The issuers' host for a load terminal at ``outlet`` now (opened once a day per operator, outlet and till)."""
        key = (operator, outlet, cash)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = purse_host.PurseHost(self.world, operator=operator, outlet=outlet, now=self.clock.now(),
                                                cash=cash)
        return host.at(self.clock.now())

    def _recover_load(self, card: dict[str, Any], op: str, outlet: str, terminal_no: bytes) -> None:
        """``transit recover`` at the counter: the torn load confirmed or reversed from what the card says."""
        assert self.world is not None
        self.step(20)
        reader = self.reader(card["path"])
        try:
            outcome = loader.recover(reader, self._purse_host(op, outlet, False), terminal_no)
            card["balance"] = outcome.balance_fen
            self.tally.count("load_recovered", card_node(card))
        except (SbcardError, CardStatus, CardIOError, ReaderError):
            self.tally.count("load_unrecovered", card_node(card))
        finally:
            closed_reader(reader)

    def on_tap(self, event: plan.Event) -> None:
        person = self.people[event.who]
        data = event.data
        leg = data["leg"]
        if self._pending and leg != "exit":
            self._taps_done(("who", person.idx))  # what the rider knows before setting off: the balance
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        # An exit is tapped only if the rider got in: the validators know (``sim.validators``).
        terminal_id = self.state["terminals"][f"{data['network']}/{data['stop']}"]
        node = data["network"].split("-", 1)[0]
        if leg != "exit" and (card.get("balance") is None or card["balance"] < LOW_BALANCE_FEN):
            self.load(person, card, node)
            self.move_to(event.at + dt.timedelta(seconds=1))
        # Short of money even so (a refused load): the rider waits at the gate for the answer,
        # to load and tap again if it says so; otherwise the rider walks on.
        waits = leg != "exit" and (card.get("balance") is None or card["balance"] < LOW_BALANCE_FEN)
        self.hand_tap(PendingTap(person.idx, card, terminal_id, data.get("km"), node, leg, data["network"],
                                 self.clock.now().hour, retry=waits))
        if waits:
            self._taps_done(("who", person.idx))


    def on_finder_tap(self, event: plan.Event) -> None:
        """Someone who found a lost card tries it on a bus of its region."""
        lost = self.state["lost_cards"].get(str(event.who))
        if lost is None:
            return
        node = card_node(lost)
        network = {"bj": "bj-bus", "tj": "tj-bus", "he": "he-sjz-bus"}[node]
        stops = sorted(k for k in self.state["terminals"] if k.startswith(network + "/"))
        terminal_id = self.state["terminals"][stops[event.who % len(stops)]]
        card = {"card": lost["card"], "path": lost["path"]}
        self.hand_tap(PendingTap(event.who, card, terminal_id, "3" if network == "bj-bus" else None, node, None,
                                 network, self.clock.now().hour))

    # ================================================================ medical

    def on_medical(self, event: plan.Event) -> None:
        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        data = event.data
        hospital = medical_reference.hospital(data["hospital"])
        where = routing.hospital_node(hospital)
        lines = [ClaimLine(line["code"], line["quantity"], line["price_fen"]) for line in data["lines"]]
        pos = PointOfSale(routing.PosHost(self.world, now=self.clock.now()), medical_reference, self.clock, hospital.code)
        reader = self.reader(card["path"])
        try:
            receipt = pos.settle(reader, lines, pin=person.pin if data["use_account"] else None,
                                 self_pay=data["self_pay"], visit="emergency" if data["emergency"] else "")
        except (SbcardError, CardStatus, CardIOError, ReaderError) as refused:
            self._refused("medical_refused", where, refused)
            return
        finally:
            closed_reader(reader)
        self.tally.count("medical_claim", where)
        if receipt["mode"] == "offline":
            self.tally.count("medical_offline", where)
        self.tally.medical(receipt["insured_node"], where, receipt["total_fen"])
        if receipt["status"] == "settled":
            self._claims_today.append({"claim_id": receipt["claim_id"], "insured": receipt["insured_node"],
                                       "hospital": where, "total_fen": receipt["total_fen"]})

    def on_medical_refund(self, _event: plan.Event) -> None:
        assert self.world is not None
        if not self._claims_today:
            return
        claim = self._claims_today.pop(self._claim_rng.randrange(len(self._claims_today)))
        try:
            routing.refund(self.world, claim["claim_id"], None, now=self.clock.now())
        except SbcardError as refused:
            self._refused("medical_refund_refused", claim["hospital"], refused)
            return
        self.tally.count("medical_refund", claim["hospital"])
        self.tally.medical(claim["insured"], claim["hospital"], -claim["total_fen"], n=0)

    # ================================================================ venues and libraries

    def gate(self, venue_code: str) -> Any:
        found = self._gates.get(venue_code)
        if found is None:
            assert self.world is not None
            place = venue(venue_code)
            state = self._terminal_state(self.state["gates"][venue_code])
            found = self._gates[venue_code] = VenueGate(state, state.psam(), self.clock, venue_gates.GateHost(self.world, place),
                                                        place)
        return found

    def on_venue(self, event: plan.Event) -> None:
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        gate = self.gate(event.data["venue"])
        node = gate.venue.node
        if card.get("balance") is not None and card["balance"] < gate.venue.price_fen:
            self.load(person, card, node)
            self.move_to(event.at + dt.timedelta(seconds=1))
        shown = frozenset({"elderly_card"} if event.data.get("elderly_card") else ())  # the 养老助残卡 shown
        reader = self.reader(card["path"], self.fault_plan.tear_purchase())
        try:
            result = gate.enter(reader, student=event.data["student"], shown=shown)
        except CardIOError:
            self.tally.fault("torn_purchase")
            closed_reader(reader)
            self.step(5)
            reader = self.reader(card["path"])
            result = gate.enter(reader, student=event.data["student"], shown=shown)
        finally:
            closed_reader(reader)
        if result.balance_fen is not None:
            card["balance"] = result.balance_fen
        if result.ok:
            self.tally.count("venue_entry", node)
        else:
            self._refused("venue_refused", node, result)

    def _desk_card(self, person: Person, library: str) -> tuple[Any, Any, Any] | None:
        """The library's desk and the holder's card identified on it (None: refused)."""
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return None
        desk = self.gate(library)
        reader = self.reader(card["path"])
        try:
            facts = desk.identify(reader)
        except (Refused, CardStatus, CardIOError, ReaderError) as refused:
            closed_reader(reader)
            self._refused("library_refused", desk.venue.node, refused)
            return None
        return desk, reader, facts

    def on_borrow(self, event: plan.Event) -> None:
        assert self.world is not None
        person = self.people[event.who]
        found = self._desk_card(person, event.data["library"])
        if found is None:
            return
        desk, reader, facts = found
        closed_reader(reader)
        self.state["item_seq"] += 1
        item = f"{event.data['library']}-{self.state['item_seq']:07d}"
        try:
            done = venue_gates.borrow(self.world, desk.venue, citizen_id=facts.citizen_id,
                                      card_number=facts.card_number, item=item, now=self.clock.now())
        except SbcardError as refused:
            self._refused("library_refused", desk.venue.node, refused)
            return
        self.state["loans"].append({"who": person.idx, "library": desk.venue.code, "item": item,
                                    "due": done["due_date"]})
        self.tally.count("library_loan", desk.venue.node)

    def on_return(self, event: plan.Event) -> None:
        assert self.world is not None
        person = self.people[event.who]
        loan = next((x for x in self.state["loans"] if x["item"] == event.data["item"]), None)
        if loan is None:
            return
        found = self._desk_card(person, event.data["library"])
        if found is None:
            return
        desk, reader, facts = found
        try:
            done = venue_gates.return_item(self.world, desk.venue, citizen_id=facts.citizen_id,
                                           card_number=facts.card_number, item=loan["item"], now=self.clock.now())
            if done["fine_fen"] > 0:
                owed = venue_gates.fines_owed(self.world, desk.venue, facts.citizen_id)
                amount = sum(f["amount_fen"] for f in owed)
                ids = [f["id"] for f in owed]
                try:
                    tap = desk.charge(reader, facts, amount, fine_ids=ids,
                                      description=f"overdue fines {', '.join(map(str, ids))}")
                    venue_gates.fines_paid(self.world, desk.venue, ids, terminal=desk.config.terminal_id,
                                           counter=tap.counter, terminal_serial=tap.terminal_serial, at=tap.at)
                    self.tally.count("library_fine", desk.venue.node)
                except Refused:
                    self.tally.count("library_fine_owed", desk.venue.node)
        except SbcardError as refused:
            self._refused("library_refused", desk.venue.node, refused)
            return
        finally:
            closed_reader(reader)
        self.state["loans"].remove(loan)
        self.tally.count("library_return", desk.venue.node)

    # ================================================================ the card's life

    def on_lost(self, event: plan.Event) -> None:
        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "active":
            return
        channel = event.data["channel"]
        outlet = self.outlet_near(person) if channel == "counter" else None
        try:
            done = lifecycle.report_lost(self.world, card_number=card["card"], channel=channel,
                                         operator=self.counter_op(person.node), outlet=outlet, now=self.clock.now())
        except SbcardError as refused:
            self._refused("lost_refused", person.node, refused)
            return
        card["status"] = "lost"
        card["loss_kind"] = done["loss_kind"]
        self.state["lost_cards"][str(person.idx)] = {"card": card["card"], "path": card["path"]}
        self.tally.count("lost", person.node)

    def on_unblock(self, event: plan.Event) -> None:
        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "lost":
            return
        try:
            lifecycle.unblock(self.world, card_number=card["card"], operator=self.counter_op(person.node),
                              outlet=self.outlet_near(person), now=self.clock.now())
        except SbcardError as refused:
            self._refused("unblock_refused", person.node, refused)
            return
        card["status"] = "active"
        card.pop("loss_kind", None)
        self.state["lost_cards"].pop(str(person.idx), None)
        self.tally.count("unblock", person.node)

    def _card_found(self, card_number: str) -> None:
        """A temporary loss lapsed (never confirmed): the holder's card works again."""
        for key, card in self.state["cards"].items():
            if card["card"] == card_number and card["status"] == "lost":
                card["status"] = "active"
                card.pop("loss_kind", None)
                self.state["lost_cards"].pop(key, None)
                self.tally.count("loss_lapsed", card_node(card))

    def on_replace(self, event: plan.Event) -> None:
        assert self.world is not None
        person = self.people[event.who]
        card = self.card_of(person.idx)
        if card is None or card["status"] != "lost":
            return
        outlet = self.outlet_near(person)
        op = self.counter_op(outlet[:2].lower())
        try:
            guardian = person.guardian_id if person.age_on(self.clock.now().date()) < 16 else None
            job = replacement.Replacement(self.world, card["card"], operator=op, outlet=outlet, now=self.clock.now(),
                              guardian_id=guardian)
        except SbcardError as refused:
            self._refused("replace_refused", person.node, refused)
            return
        old = card["card"]
        new = self._issue_and_activate(person, "", outlet, op, step=90, replace=job)
        if new is None or new["card"] == old:
            self.state["cards"][str(person.idx)] = card  # nothing changed
            return
        self.tally.count("replace", person.node)

    # ================================================================ subsidies

    def on_subsidy(self, event: plan.Event) -> None:
        assert self.world is not None
        node = event.data["node"]
        staff = self.state["staff"][node]
        try:
            batch = batch_import.generate_batch(self.world, item="GLJT", as_of=self.clock.now().date(), region=PROVINCE[node],
                                   operator=staff["maker"], now=self.clock.now())
        except SbcardError:
            self.tally.subsidy("no_batch")
            return
        batch_id = batch["batch_id"]
        try:
            payment.approve(self.world, batch_id, operator=staff["checker"], now=self.step(1800))
            done = payment.pay(self.world, batch_id, now=self.step(900), operator=staff["checker"], runner=SIM_RUNNER)
        except SbcardError as refused:
            self.tally.subsidy("batch_refused")
            self.refusals[f"subsidy:{refused.code}"] = self.refusals.get(f"subsidy:{refused.code}", 0) + 1
            return
        invalid = int(done.get("invalid") or 0)
        self.tally.subsidy("paid", int(done["paid"]))
        self.tally.subsidy("failed", int(done["failed"]) - invalid)
        self.tally.subsidy("invalid", invalid)
        self.tally.count("subsidy_paid", node, int(done["paid"]))

    # ================================================================ links

    def on_link_down(self, event: plan.Event) -> None:
        assert self.world is not None
        links.set_link(self.world.hub(), event.data["node"], up=False, note="simulated outage", now=self.clock.now())
        self.tally.fault("region_down")

    def on_link_up(self, event: plan.Event) -> None:
        assert self.world is not None
        links.set_link(self.world.hub(), event.data["node"], up=True, note="outage over", now=self.clock.now())
        self._reconcile_medical()

    def _reconcile_medical(self) -> None:
        assert self.world is not None
        done = routing.reconcile(self.world, now=self.clock.now())
        for claim in done["reconciled"]:
            self.tally.count("medical_reconciled", claim.get("hospital_node") or claim["insured_node"])


@functools.lru_cache(maxsize=None)
def load_terminal_no(outlet: str) -> bytes:
    """The terminal number (6 bytes) of the outlet's load terminal: its district and number, then 0001."""
    code = OutletCode.parse(outlet)
    return bytes.fromhex(f"{code.district}{code.number}0001")


def card_node(card: dict[str, Any]) -> str:
    return {"B": "bj", "T": "tj", "H": "he"}[card["card"][0]]

