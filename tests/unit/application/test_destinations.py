"""The SSRF guard as a function: only global unicast addresses may receive callbacks."""

from __future__ import annotations

import pytest

from application.destinations import refusal

REFUSED = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",  # the cloud metadata service
    "fe80::1": "link-local",
    "fd00::1": "private",  # unique-local
    "100.64.0.1": "shared",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "240.0.0.1": "reserved",
    "192.0.2.1": "private",  # documentation (TEST-NET-1): not global
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:10.0.0.1": "private",
    "64:ff9b::a9fe:a9fe": "link-local",  # NAT64 of 169.254.169.254
    "2002:c0a8:0101::1": "private",  # 6to4 of 192.168.1.1
    "2002:7f00:0001::1": "loopback",  # 6to4 of 127.0.0.1
}


@pytest.mark.parametrize(("address", "kind"), sorted(REFUSED.items()))
def test_non_global_addresses_are_refused(address: str, kind: str) -> None:
    reason = refusal(address)
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_global_unicast_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


def test_a_name_is_not_an_address() -> None:
    assert refusal("example.com") is not None
