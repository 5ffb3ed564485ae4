"""``sbcard serve`` as a person runs it: a process that prints its address and stops cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADDRESS = re.compile(r"sbcard serving (\w+) at (http://127\.0\.0\.1:(\d+))")


def _serve(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sbcard", "--home", str(home), "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@contextlib.contextmanager
def _served(home: Path, *args: str, pattern: re.Pattern[str] = ADDRESS, verify: ssl.SSLContext | bool = True):
    """``sbcard serve`` running until the block ends: (process, its URL), answering; killed if it outlives the test."""
    process = _serve(home, *args)
    try:
        line = process.stdout.readline()
        match = pattern.search(line)
        assert match, f"no address printed: {line!r}"
        url = match.group(2)
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/api/v1/health", timeout=5, verify=verify)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.05)
        yield process, url
    finally:
        _reap(process)


def _reap(process: subprocess.Popen) -> None:
    """Stop exactly this process if it still runs, and close its pipes."""
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stdout.close()
    process.stderr.close()


def test_serve_prints_its_address_answers_and_stops_cleanly_on_sigterm(api_home):
    with _served(api_home) as (process, url):
        assert httpx.get(f"{url}/api/v1/health", timeout=5).json()["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_serve_refuses_a_missing_world_before_listening(tmp_path):
    process = _serve(tmp_path / "nowhere")
    try:
        assert process.wait(timeout=30) == 2
        assert "no world" in process.stderr.read()
    finally:
        _reap(process)


def test_the_request_log_masks_citizen_ids_and_never_holds_a_password(api_home):
    with _served(api_home) as (process, url):
        httpx.get(f"{url}/api/v1/persons/110105194912310021", timeout=5)
        httpx.post(f"{url}/api/v1/session", json={"operator": "BJ-C1", "password": "a-Secret-password-1"}, timeout=5)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        log = process.stderr.read()
    assert "/api/v1/persons/110105********0021" in log
    assert "110105194912310021" not in log
    assert "a-Secret-password-1" not in log
    assert re.search(r"[0-9a-f]{16} POST /api/v1/session 401", log)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sbcard test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def test_serve_speaks_https_with_a_certificate(api_home, tmp_path):
    certfile, keyfile = _self_signed(tmp_path)
    trusted = ssl.create_default_context(cafile=str(certfile))
    with _served(api_home, "--certfile", str(certfile), "--keyfile", str(keyfile),
                 pattern=re.compile(r"sbcard serving (\w+) at (https://127\.0\.0\.1:(\d+))"), verify=trusted) as (
            process, url):
        assert httpx.get(f"{url}/api/v1/health", timeout=5, verify=trusted).json()["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
