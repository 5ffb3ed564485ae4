"""The synthetic population of the three regions, made from the seed alone.

``make_population(n, seed, start)`` gives ``n`` people — the same people for the same
seed, in the same order — with valid citizen IDs (the household district's code, the
birth date, a sequence whose parity is the sex, the check character), names that fit
the card (GBK, short), an age from a census-like pyramid, the insurance a person of
that age and occupation has (employees, retired employees, residents: children,
students, the unemployed, most of the elderly), a guardian for each minor, and what the
simulator needs to make them move about:

- ``role``: child (under 6), student (6–22), worker, retiree, resident (an adult
  neither working nor retired);
- ``home`` and ``work``: the transit networks of where they live and where they work,
  with a station or line on each — a Langfang worker may commute to Beijing (he-lf-bus,
  then bj-subway), a Tianjin worker to Beijing (tj-metro, then bj-subway), a few
  Beijing workers to Tianjin;
- ``has_card``: whether the person already holds a card when the run starts (most do;
  the others apply during the run), and the PIN they choose at activation.

Regions: Beijing 40 %, Tianjin 25 %, Hebei 35 % (Shijiazhuang, Langfang, and a few other
Hebei cities with no transit in the fixtures). The districts are those with an outlet,
so a person can apply near home. Nothing here touches a database: ``csv_rows`` gives the
rows of the registry's bulk import (``sbcard person import``'s columns).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from sbcard.domain.citizen_id import compute_check_char
from sbcard.domain.pin import check_new_pin
from sbcard.domain.errors import InvalidInput

NODES = ("bj", "tj", "he")
NODE_SHARE = {"bj": 0.40, "tj": 0.25, "he": 0.35}

# Districts with an outlet (fixtures/outlets.csv), by where they are, with a weight.
DISTRICTS: dict[str, list[tuple[str, int]]] = {
    "bj": [("110101", 5), ("110102", 8), ("110105", 16), ("110106", 10), ("110107", 3), ("110108", 15),
           ("110112", 9), ("110114", 10), ("110115", 9), ("110119", 2)],
    "tj": [("120101", 4), ("120102", 6), ("120103", 7), ("120104", 8), ("120105", 6), ("120106", 4),
           ("120110", 5), ("120111", 6), ("120113", 5), ("120114", 6), ("120116", 12), ("120118", 4),
           ("120119", 4)],
    "sjz": [("130102", 5), ("130104", 5), ("130108", 6)],
    "lf": [("131003", 1)],
    "he_other": [("130203", 5), ("130302", 2), ("130402", 4), ("130502", 3), ("130606", 6), ("130638", 1),
                 ("130702", 2), ("130802", 2), ("130903", 3), ("131102", 2)],
}
HEBEI_CITIES = (("sjz", 0.45), ("lf", 0.30), ("he_other", 0.25))

# Share of the population per 5-year age band, 0–4 … 95–99 (China's 2020 census, rounded).
AGE_BANDS = (5.5, 6.4, 6.0, 5.2, 5.4, 6.5, 8.8, 7.2, 6.7, 8.2, 8.6, 7.2, 5.2, 5.2, 3.5, 2.2, 1.4, 0.8, 0.3, 0.08)

# Where one rides: the networks of the fixtures (fixtures/transit), and the stops the simulator
# gives them (metro gates at these stations, bus validators on these lines).
BJ_SUBWAY = ("古城", "公主坟", "军事博物馆", "西单", "王府井", "国贸", "四惠", "西直门", "东直门", "北京南站",
             "中关村", "宋家庄", "天通苑", "霍营", "朝阳门", "东单")
TJ_METRO = ("刘园", "西北角", "营口道", "小白楼", "天津站", "南楼", "曹庄", "高新区")
BUS_LINES = {
    "bj-bus": ("1", "52", "300快", "特8", "运通101", "快速公交1线", "814", "930"),
    "tj-bus": ("8", "13", "600", "606", "641", "904"),
    "he-sjz-bus": ("1", "5", "25", "105"),
    "he-lf-bus": ("1", "2", "27"),
}
METRO = {"bj-subway": BJ_SUBWAY, "tj-metro": TJ_METRO}

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉建红文晨宇浩然欣怡子轩梓涵一诺"
         "思远博文雨泽佳琪雅婷志强国庆海燕春梅秋菊冬雪立新卫东振华丹阳")
RELATIONS = {"M": "父亲", "F": "母亲"}
MAX_GUARDIAN_AGE = 55
# The run keeps every person, card and terminal in memory: measured peak resident memory of
# `sbcard simulate --days 1` on this project's 2-core machine: 147 MB at 5,000 people, 366 MB
# at 20,000 (≈ 15 KB a person over a ~75 MB base; 300 people × 2 days: 76 MB). 500,000 people
# need ≈ 7.5 GB and about 20 minutes a simulated day (100,000 people: 4 minutes a day).
MAX_POPULATION = 500_000
KB_PER_PERSON = 15


@attrs.frozen
class Place:
    """Where a person boards: a network and a metro station or a bus line on it."""

    network: str  # bj-subway, bj-bus, tj-metro, tj-bus, he-sjz-bus, he-lf-bus
    stop: str  # a station (metro) or a line (bus)

    @property
    def metro(self) -> bool:
        return self.network in METRO

    def to_json(self) -> list[str]:
        return [self.network, self.stop]


@attrs.frozen
class Person:
    idx: int
    citizen_id: str
    name: str
    node: str  # the registry (insured region's province) that holds them
    city: str  # bj, tj, sjz, lf, he_other
    district: str  # household and insured region
    birth_date: dt.date
    sex: str
    insurance: str  # employee | resident
    retired: bool
    role: str  # child | student | worker | retiree | resident
    home: tuple[Place, ...]  # where they board near home (a second place: another network there)
    work: tuple[Place, ...]  # where they board near work or school (empty: no regular trips)
    commuter: str | None  # e.g. "lf→bj"
    has_card: bool  # holds an active card when the run starts
    guardian_id: str | None
    guardian_relation: str | None
    pin: str

    def age_on(self, day: dt.date) -> int:
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))

    @property
    def work_node(self) -> str:
        return _node_of_network(self.work[0].network) if self.work else self.node


def _node_of_network(network: str) -> str:
    return network.split("-", 1)[0]


def check_population(n: int, field: str = "--population") -> int:
    """``n`` if the simulator can hold that many people in memory; refused with why otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput("sim.population", f"a population is a whole number of people, at least 1; got {n!r}",
                           field)
    if n > MAX_POPULATION:
        raise InvalidInput(
            "sim.population_too_large",
            f"at most {MAX_POPULATION:,} people: the simulator holds every person and card in memory, about "
            f"{KB_PER_PERSON} KB each (measured), so {n:,} would need about {n * KB_PER_PERSON / 1e6:,.1f} GB; "
            "simulate a sample of the three regions' ~110 million people", field)
    return n


def make_population(n: int, seed: int, start: dt.date) -> list[Person]:
    """``n`` people, the same for the same seed; ages as of ``start`` (the run's first day)."""
    rng = random.Random(f"{seed}/population")
    used: set[str] = set()
    people: list[Person] = []
    adults: dict[str, list[Person]] = {node: [] for node in NODES}
    pending_minors: list[int] = []
    for idx in range(n):
        person = _person(rng, idx, start, used)
        people.append(person)
        if 22 <= person.age_on(start) <= MAX_GUARDIAN_AGE:
            adults[person.node].append(person)
        elif person.age_on(start) < 16:
            pending_minors.append(idx)
    guardian_rng = random.Random(f"{seed}/guardians")
    for idx in pending_minors:
        minor = people[idx]
        pool = adults[minor.node] or [p for node in NODES for p in adults[node]]
        if not pool:  # a population of children only: they get no guardian and no card
            people[idx] = attrs.evolve(minor, has_card=False)
            continue
        guardian = pool[guardian_rng.randrange(len(pool))]
        people[idx] = attrs.evolve(minor, guardian_id=guardian.citizen_id, guardian_relation=RELATIONS[guardian.sex])
    return people


def _choice(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    values, bounds = _cumulative(tuple(weighted))
    i = bisect.bisect_right(bounds, rng.random() * bounds[-1])
    return values[min(i, len(values) - 1)]


@functools.lru_cache(maxsize=None)
def _cumulative(weighted: tuple[tuple[Any, float], ...]) -> tuple[tuple[Any, ...], tuple[float, ...]]:
    """The values and their running weights (the tables are few and fixed; people are many)."""
    return tuple(v for v, _ in weighted), tuple(itertools.accumulate(w for _, w in weighted))


def _age(rng: random.Random) -> int:
    band = _choice(rng, tuple(enumerate(AGE_BANDS)))
    return band * 5 + rng.randrange(5)


def _citizen_id(rng: random.Random, district: str, birth: dt.date, sex: str, used: set[str]) -> str:
    while True:
        seq = rng.randrange(1, 500) * 2 - (1 if sex == "M" else 0)  # odd: male, even: female
        first17 = f"{district}{birth:%Y%m%d}{seq:03d}"
        cid = first17 + compute_check_char(first17)
        if cid not in used:
            used.add(cid)
            return cid


def _name(rng: random.Random) -> str:
    surname = SURNAMES[rng.randrange(len(SURNAMES))]
    given = "".join(GIVEN[rng.randrange(len(GIVEN))] for _ in range(1 + (rng.random() < 0.7)))
    return surname + given


def _pin(rng: random.Random, birth: dt.date) -> str:
    while True:
        pin = f"{rng.randrange(10 ** 6):06d}"
        try:
            return check_new_pin(pin, birth_date=birth)
        except InvalidInput:
            continue


def _person(rng: random.Random, idx: int, start: dt.date, used: set[str]) -> Person:
    node = _choice(rng, tuple(NODE_SHARE.items()))
    city = node if node != "he" else _choice(rng, HEBEI_CITIES)
    district = _choice(rng, tuple(DISTRICTS[city]))
    age = _age(rng)
    sex = "M" if rng.random() < 0.51 else "F"
    birth = start - dt.timedelta(days=age * 365 + age // 4 + rng.randrange(365))
    birth = min(birth, start - dt.timedelta(days=1))
    retire_age = 60 if sex == "M" else 55
    if age < 6:
        role = "child"
    elif age < 23 and rng.random() < (0.97 if age < 18 else 0.5):
        role = "student"
    elif age >= retire_age:
        role = "retiree" if rng.random() < 0.6 else "resident"
    else:
        role = "worker" if rng.random() < 0.78 else "resident"
    insurance = "employee" if role in ("worker", "retiree") else "resident"
    retired = role == "retiree"
    home, work, commuter = _places(rng, city, role)
    has_card = age >= 1 and rng.random() < 0.92
    return Person(
        idx=idx,
        citizen_id=_citizen_id(rng, district, birth, sex, used),
        name=_name(rng),
        node=node,
        city=city,
        district=district,
        birth_date=birth,
        sex=sex,
        insurance=insurance,
        retired=retired,
        role=role,
        home=home,
        work=work,
        commuter=commuter,
        has_card=has_card,
        guardian_id=None,
        guardian_relation=None,
        pin=_pin(rng, birth),
    )


def _local(rng: random.Random, city: str) -> Place | None:
    """A place to board near home in ``city`` (None where the fixtures have no transit)."""
    if city == "bj":
        network = "bj-subway" if rng.random() < 0.6 else "bj-bus"
    elif city == "tj":
        network = "tj-metro" if rng.random() < 0.35 else "tj-bus"
    elif city == "sjz":
        network = "he-sjz-bus"
    elif city == "lf":
        network = "he-lf-bus"
    else:
        return None
    stops = METRO.get(network) or BUS_LINES[network]
    return Place(network, stops[rng.randrange(len(stops))])


def _other_stop(rng: random.Random, place: Place) -> Place:
    """Somewhere else on the same network (another station, or the same bus line further on)."""
    if not place.metro:
        return place
    stations = [s for s in METRO[place.network] if s != place.stop]
    return Place(place.network, stations[rng.randrange(len(stations))])


def _places(rng: random.Random, city: str, role: str) -> tuple[tuple[Place, ...], tuple[Place, ...], str | None]:
    home = _local(rng, city)
    if home is None:
        return (), (), None
    if role not in ("worker", "student"):
        return (home,), (_other_stop(rng, home),), None
    commute = None
    if role == "worker":
        if city == "lf" and rng.random() < 0.4:
            commute = "lf→bj"
        elif city == "tj" and rng.random() < 0.12:
            commute = "tj→bj"
        elif city == "bj" and rng.random() < 0.03:
            commute = "bj→tj"
    if commute is None:
        return (home,), (_other_stop(rng, home),), None
    if commute == "tj→bj":
        home = Place("tj-metro", TJ_METRO[rng.randrange(len(TJ_METRO))])
    far = "bj" if commute.endswith("bj") else "tj"
    start = Place("bj-subway", BJ_SUBWAY[rng.randrange(len(BJ_SUBWAY))]) if far == "bj" else \
        Place("tj-metro", TJ_METRO[rng.randrange(len(TJ_METRO))])
    # the second leg, in the city of work: from the intercity station to the office
    arrive = Place(start.network, "北京南站" if far == "bj" else "天津站")
    if arrive.stop == start.stop:
        start = _other_stop(rng, start)
    return (home,), (arrive, start), commute


def csv_rows(people: Sequence[Person], node: str) -> Iterator[dict[str, str]]:
    """The rows of ``node``'s registry import (``sbcard person import``'s columns)."""
    for p in people:
        if p.node != node:
            continue
        yield {
            "citizen_id": p.citizen_id,
            "name": p.name,
            "insurance": p.insurance,
            "retired": "1" if p.retired else "0",
            "region": p.district,
            "insured_region": p.district,
            "guardian_id": p.guardian_id or "",
            "guardian_relation": p.guardian_relation or "",
            # 户籍 where the ID was first registered, else a residence permit (居住证): from the ID
            # alone, so the seed's random stream is untouched (issue 16)
            "residence": "hukou" if p.citizen_id[:2] == p.district[:2] else "permit",
        }


CSV_COLUMNS = ("citizen_id", "name", "insurance", "retired", "region", "insured_region", "guardian_id",
               "guardian_relation", "residence")
