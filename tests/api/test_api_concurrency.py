"""Many clients at once on one world never meet "database is locked"."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
from api_world import FIRST_PASSWORD


def test_concurrent_clients_and_a_cli_writer_all_get_their_answers(live_server, signed_in):
    admin = signed_in("BJ-ADMIN")
    token = admin.headers["Authorization"]
    for code in ("BJ-SUP", "BJ-AUD", "BJ-FM", "BJ-FC", "BJ-C2"):
        signed_in(code)

    def create(i: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=60, headers={"Authorization": token}) as client:
            answer = client.post("/api/v1/staff", headers={"Idempotency-Key": f"k{i}"},
                                 json={"code": f"BJ-N{i:02d}", "name": "新员工", "role": "counter",
                                       "region": "110105", "password": FIRST_PASSWORD})
            return answer.status_code

    def sign_in(code: str) -> int:
        return live_server.sign_in(code, "own-Secret-7788").status_code

    # a second writer of the same files, outside the service: the CLI adding accounts meanwhile
    cli = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys\n"
            "from click.testing import CliRunner\n"
            "from sbcard.cli.main import cli\n"
            "for i in range(8):\n"
            "    r = CliRunner().invoke(cli, ['--home', sys.argv[1], 'staff', 'add', f'BJ-X{i}', '--name', '外来',\n"
            "        '--role', 'auditor', '--region', '110000', '--password-stdin'], input='first-Pass-2025\\n')\n"
            "    assert r.exit_code == 0, r.output\n"), str(live_server.home)])
    with ThreadPoolExecutor(max_workers=24) as pool:
        created = list(pool.map(create, range(40)))
        signed = list(pool.map(sign_in, ["BJ-SUP", "BJ-AUD", "BJ-FM", "BJ-FC", "BJ-C2"] * 8))
    assert cli.wait(timeout=120) == 0
    assert created == [201] * 40
    assert signed == [200] * 40
    listed = admin.get("/api/v1/staff").json()["staff"]
    assert len([row for row in listed if row["code"].startswith(("BJ-N", "BJ-X"))]) == 48
