"""The network service under load: staff clients and terminals against ``sbcard serve`` on localhost.

    .venv/bin/python benchmarks/serve_load.py [--clerks 50] [--issuances 4] [--terminals 200]
                                              [--records 1000] [--think-ms 0] [--part staff|terminals|both]
                                              [--topology all|nodes|both] [--json]

A seeded world is built in a temporary directory: ``--clerks`` counter accounts spread over
the three regions' outlets, each with blanks in its outlet's stock, and ``--terminals``
transit validators (Beijing subway, Tianjin bus, Hebei bus), each holding ``--records``
offline purchases made by tapping issued cards in process before the clock starts. Then
``sbcard serve`` runs as its own process (``--node all``; with ``--topology nodes`` one
process per node, the nodes talking over HTTP) and, all at once:

- each clerk signs in and makes ``--issuances`` cards: registers a person, applies, issues
  on the next blank of the outlet's stock (the software card), activates with a PIN;
- each terminal uploads its log over HTTP (MACed requests, the PSAM's batch MAC) and
  fetches the lists.

It prints requests/s, p50 and p99 per kind of request, the whole issuance (apply + issue
+ activate) p50/p99, the time for every terminal's upload, and the errors (target 0).
Targets: issuance p99 <= 1 s under that load; 200 terminals x 1,000 records <= 60 s.
The clients are threads of this process: on a 2-core machine they share the cores with the
server, which the figures include.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import httpx  # noqa: E402

from sbcard.clock import FixedClock  # noqa: E402
from sbcard.domain.citizen_id import compute_check_char  # noqa: E402
from sbcard.services.outlets import staff as accounts  # noqa: E402
from sbcard.services.outlets import stock  # noqa: E402
from sbcard.store.world import init_world, open_world  # noqa: E402
from terminals.emulator.blank import create_blank  # noqa: E402

API = "/api/v1"
PASSWORD = "bench-Pass-2025"
FIRST = "first-Pass-2025"
PIN = "147258"
# node -> counter outlets the clerks work at (district, outlet)
OUTLETS = {
    "bj": [("110105", "BJ-110105-01"), ("110101", "BJ-110101-01"), ("110102", "BJ-110102-01")],
    "tj": [("120103", "TJ-120103-01"), ("120101", "TJ-120101-01")],
    "he": [("130102", "HE-130102-01")],
}
ADDRESS = re.compile(r"at (http://127\.0\.0\.1:\d+)")


class Timings:
    def __init__(self) -> None:
        self.by_kind: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def call(self, kind: str, fn, *, expect: tuple[int, ...] = (200, 201)) -> httpx.Response | None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            answer = fn()
        except httpx.HTTPError as exc:
            with self._lock:
                self.errors[f"{kind}: {type(exc).__name__}"] += 1
            return None
        elapsed = time.perf_counter() - started
        with self._lock:
            self.by_kind[kind].append(elapsed)
            if answer.status_code not in expect:
                self.errors[f"{kind}: {answer.status_code} {answer.text[:120]}"] += 1
                return None
        return answer

    def add(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.by_kind[kind].append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind, values in sorted(self.by_kind.items()):
            ordered = sorted(values)
            out[kind] = {"count": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
                         "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1)}
        return out


def clerks_of(count: int) -> list[dict[str, str]]:
    """``count`` clerks spread over the regions' outlets, half of them in Beijing."""
    nodes = ["bj", "bj", "tj", "he"]
    clerks = []
    for i in range(count):
        node = nodes[i % len(nodes)]
        district, outlet = OUTLETS[node][i // len(nodes) % len(OUTLETS[node])]
        clerks.append({"code": f"{node.upper()}-L{i:03d}", "node": node, "district": district, "outlet": outlet})
    return clerks


def build(home: Path, clerks: list[dict[str, str]], issuances: int) -> None:
    clock = FixedClock(time_now())
    init_world(home, clock, rng_seed=1818)
    with open_world(home) as world:
        for clerk in clerks:
            db = world.region(clerk["node"])
            accounts.add_staff(db, code=clerk["code"], name="王芳", role="counter", region=clerk["district"],
                               outlet=clerk["outlet"], password=FIRST, by="bench", now=clock.now())
        for node, outlets in OUTLETS.items():
            for _, outlet in outlets:
                mine = [c for c in clerks if c["outlet"] == outlet]
                if mine:
                    stock.receive_stock(world.region(node), outlet=outlet, count=len(mine) * issuances,
                                        operator=mine[0]["code"], now=clock.now(), cards_dir=world.paths.cards_dir,
                                        make_blank=create_blank)


def time_now():  # type: ignore[no-untyped-def]
    import datetime as dt

    from sbcard.clock import BEIJING

    return dt.datetime.now(BEIJING)


def start_server(home: Path, node: str = "all", peers: dict[str, str] | None = None,
                 port: int = 0) -> tuple[subprocess.Popen, str]:
    args = [sys.executable, "-m", "sbcard", "--home", str(home), "serve", "--port", str(port), "--node", node,
            "--log-level", "warning"]
    for peer, url in (peers or {}).items():
        args += ["--peer", f"{peer}={url}"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    match = ADDRESS.search(process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("the server did not start")
    url = match.group(1)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}{API}/health", timeout=5)
            return process, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def person_id(clerk: dict[str, str], n: int, i: int) -> str:
    first17 = f"{clerk['district']}1975{n % 12 + 1:02d}{i % 28 + 1:02d}{n % 1000:03d}"
    return first17 + compute_check_char(first17)


def first_sign_in(url: str, clerk: dict[str, str]) -> None:
    """Before the day (not timed): each clerk chooses their own password."""
    answer = httpx.post(f"{url}{API}/session", json={"operator": clerk["code"], "password": FIRST,
                                                     "new_password": PASSWORD}, timeout=300)
    answer.raise_for_status()


def clerk_day(url: str, clerk: dict[str, str], index: int, issuances: int, timings: Timings,
              opened: threading.Barrier, think: float = 0.0) -> None:
    """Sign in (every clerk at once, as a shift starts), then make the cards once all are signed in."""
    with httpx.Client(base_url=url, timeout=120) as client:
        answer = timings.call("session", lambda: client.post(f"{API}/session", json={
            "operator": clerk["code"], "password": PASSWORD}))
        opened.wait()
        if answer is None:
            return
        client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        for i in range(issuances):
            if think:  # the applicant sits down, shows an ID card, checks the photo
                time.sleep(think * (0.5 + (index * 7 + i * 13) % 10 / 10))
            n = index * issuances + i
            cid = person_id(clerk, n, index)
            if timings.call("persons", lambda: client.post(f"{API}/persons", json={
                    "citizen_id": cid, "name": "刘洋", "region": clerk["district"], "insurance": "employee"})) is None:
                continue
            started = time.perf_counter()
            applied = timings.call("applications", lambda: client.post(
                f"{API}/applications", json={"citizen_id": cid}, headers={"Idempotency-Key": uuid.uuid4().hex}))
            if applied is None:
                continue
            issued = timings.call("issue", lambda: client.post(
                f"{API}/applications/{applied.json()['application_id']}/issue",
                headers={"Idempotency-Key": uuid.uuid4().hex}))
            if issued is None:
                continue
            card = issued.json()["card_number"]
            if timings.call("activate", lambda: client.post(f"{API}/cards/{card}/activate", json={"pin": PIN},
                                                            headers={"Idempotency-Key": uuid.uuid4().hex})) is None:
                continue
            timings.add("issuance (apply+issue+activate)", time.perf_counter() - started)
            timings.call("card show", lambda: client.get(f"{API}/cards/{card}"))


def build_terminals(home: Path, terminals: int, records: int) -> tuple[dict[str, list], dict[str, str],
                                                                      dict[str, bytes]]:
    """``terminals`` Beijing metro validators with ``records`` offline purchases each (cards of the three
    regions, each record with the TAC its card computes), their PSAMs' batch MACs and their credentials.

    Made as ``benchmarks/transit_upload.py`` makes its day, straight into the tables: the taps themselves
    are the transit benchmarks' business; this one measures their way over HTTP.
    """
    import random

    import transit_upload as day

    from sbcard.services.terminals import credentials

    day.TERMINALS = terminals
    cards = day.build_cards(home, max(300, terminals * records // 20))
    by_terminal = day.generate(home, cards, terminals * records, random.Random(1818))
    with open_world(home) as world:
        macs = day.batch_macs(world, by_terminal)
        keys = {t: credentials.credential(world, t) for t in by_terminal}
    return by_terminal, macs, keys


def terminal_upload(url: str, terminal: str, records: list, mac: str, credential: bytes,
                    timings: Timings) -> None:
    """One validator's night: its log up over HTTP, then the lists down."""
    from terminals.apps.http_host import HttpHost

    with HttpHost(url, terminal, credential, clock=time_now, timeout=300) as host:
        started = time.perf_counter()
        try:
            answer = host.upload(terminal, records, mac=mac, now=time_now())
        except Exception as exc:  # counted, not raised: the figures say how many failed and why
            with timings._lock:
                timings.errors[f"upload: {type(exc).__name__}: {str(exc)[:100]}"] += 1
            return
        timings.add("terminal upload (1 batch)", time.perf_counter() - started)
        if answer.accepted + answer.flagged + answer.awaiting != len(records):
            with timings._lock:
                timings.errors[f"upload: {answer.rejected} rejected"] += 1
        started = time.perf_counter()
        host.lists()
        timings.add("terminal lists", time.perf_counter() - started)


def run_terminals(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="sbcard-serve-load-terminals-"))
    try:
        home = directory / "world"
        started = time.perf_counter()
        by_terminal, macs, keys = build_terminals(home, args.terminals, args.records)
        setup_s = time.perf_counter() - started
        process, url = start_server(home)
        try:
            timings = Timings()
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=min(len(by_terminal), 200)) as pool:
                for future in [pool.submit(terminal_upload, url, t, records, macs[t], keys[t], timings)
                               for t, records in by_terminal.items()]:
                    future.result()
            wall = time.perf_counter() - started
        finally:
            stop(process)
        uploaded = sum(len(r) for r in by_terminal.values())
        return {"topology": "all", "terminals": len(by_terminal), "records": uploaded, "setup_s": round(setup_s, 1),
                "wall_s": round(wall, 2), "records_per_s": round(uploaded / wall), "errors": sum(timings.errors.values()),
                "error_kinds": dict(timings.errors.most_common(5)), "latency": timings.summary()}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def start_topology(home: Path, topology: str) -> tuple[list[subprocess.Popen], dict[str, str]]:
    """``all``: one process; ``nodes``: one per node (bj, tj, he, hub), each told where the others listen."""
    if topology == "all":
        process, url = start_server(home)
        return [process], {node: url for node in ("bj", "tj", "he", "hub")}
    import socket

    ports = {}
    for node in ("bj", "tj", "he", "hub"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[node] = sock.getsockname()[1]
    urls = {node: f"http://127.0.0.1:{port}" for node, port in ports.items()}
    processes = []
    for node in ("hub", "bj", "tj", "he"):
        process, _ = start_server(home, node, {peer: url for peer, url in urls.items() if peer != node},
                                  port=ports[node])
        processes.append(process)
    return processes, urls


def run(args: argparse.Namespace, topology: str) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="sbcard-serve-load-"))
    try:
        home = directory / "world"
        clerks = clerks_of(args.clerks)
        started = time.perf_counter()
        build(home, clerks, args.issuances)
        setup_s = time.perf_counter() - started
        processes, urls = start_topology(home, topology)
        try:
            with ThreadPoolExecutor(max_workers=len(clerks)) as pool:
                list(pool.map(lambda clerk: first_sign_in(urls[clerk["node"]], clerk), clerks))
            timings = Timings()
            opened = threading.Barrier(len(clerks))
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(clerks)) as pool:
                for future in [pool.submit(clerk_day, urls[clerk["node"]], clerk, i, args.issuances, timings, opened,
                                           args.think_ms / 1000)
                               for i, clerk in enumerate(clerks)]:
                    future.result()
            wall = time.perf_counter() - started
        finally:
            for process in processes:
                stop(process)
        requests = sum(len(v) for kind, v in timings.by_kind.items() if not kind.startswith("issuance"))
        return {"topology": topology, "clerks": len(clerks), "issuances_per_clerk": args.issuances,
                "think_ms": args.think_ms,
                "setup_s": round(setup_s, 1), "wall_s": round(wall, 2), "requests": requests,
                "requests_per_s": round(requests / wall, 1), "errors": sum(timings.errors.values()),
                "error_kinds": dict(timings.errors.most_common(5)), "latency": timings.summary()}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clerks", type=int, default=50)
    parser.add_argument("--issuances", type=int, default=4, help="cards each clerk makes")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="a clerk's pause before each applicant (0: back to back, the service saturated)")
    parser.add_argument("--terminals", type=int, default=200)
    parser.add_argument("--records", type=int, default=1000, help="offline records each terminal uploads")
    parser.add_argument("--part", choices=["staff", "terminals", "both"], default="both")
    parser.add_argument("--topology", choices=["all", "nodes", "both"], default="all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    topologies = ["all", "nodes"] if args.topology == "both" else [args.topology]
    results = [run(args, topology) for topology in topologies] if args.part != "terminals" else []
    uploads = run_terminals(args) if args.part != "staff" else None
    if args.json:
        print(json.dumps({"staff": results, "terminals": uploads}, indent=2, ensure_ascii=False))
        return
    if uploads is not None:
        print(f"terminals: {uploads['terminals']} x {uploads['records'] // max(1, uploads['terminals'])} records; "
              f"set-up {uploads['setup_s']} s; all uploaded in {uploads['wall_s']} s "
              f"({uploads['records_per_s']:,} records/s; target <= 60 s); errors {uploads['errors']} "
              f"{uploads['error_kinds'] or ''}")
        for kind, figures in uploads["latency"].items():
            print(f"  {kind:34} n={figures['count']:5}  p50 {figures['p50_ms']:8.1f} ms  p99 {figures['p99_ms']:8.1f} ms")
    for result in results:
        print(f"topology {result['topology']}: {result['clerks']} clerks x {result['issuances_per_clerk']} cards "
              f"(think {result['think_ms']:g} ms); "
              f"set-up {result['setup_s']} s; {result['requests']} requests in {result['wall_s']} s = "
              f"{result['requests_per_s']} req/s; errors {result['errors']} {result['error_kinds'] or ''}")
        for kind, figures in result["latency"].items():
            print(f"  {kind:34} n={figures['count']:5}  p50 {figures['p50_ms']:8.1f} ms  p99 {figures['p99_ms']:8.1f} ms")


if __name__ == "__main__":
    main()
