"""The terminal's HTTP adapter: plain http only to a service on the same machine (its answers carry no MAC)."""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.domain.errors import InvalidInput
from terminals.apps.http_host import HttpHost

KEY = bytes(32)


def _clock() -> dt.datetime:
    return dt.datetime(2026, 12, 8, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://host.example", "http://[2001:db8::1]:80",
                                 "http://127.0.0.1.example.com", "ftp://127.0.0.1"])
def test_plain_http_to_another_machine_is_refused(url):
    with pytest.raises(InvalidInput) as refused:
        HttpHost(url, "bj-subway-0001", KEY, clock=_clock)
    assert refused.value.code == "host.url"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000",
                                 "http://127.0.0.2", "https://host.example", "https://10.0.0.5:8443/sbcard"])
def test_loopback_http_and_any_https_are_taken(url):
    HttpHost(url, "bj-subway-0001", KEY, clock=_clock).close()
