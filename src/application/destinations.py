"""Which network addresses a callback may be sent to (server-side request forgery).

Only global unicast addresses: loopback, private, link-local (169.254.169.254,
the cloud metadata service, included), unique-local, shared (100.64/10),
multicast, reserved and unspecified addresses are refused, and so are the
IPv4-mapped, NAT64 and 6to4 forms of refused IPv4 addresses.
"""

from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def refusal(address: str) -> str | None:
    """Why `address` (an IP literal) may not receive a callback, or None if it may."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return f"{address} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = refusal(str(embedded))
            return f"{address} embeds {reason}" if reason else None
    if ip.is_multicast:
        return f"{address} is a multicast address"
    if ip.is_unspecified:
        return f"{address} is the unspecified address"
    if ip.is_loopback:
        return f"{address} is a loopback address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return f"{address} is a shared (carrier-grade NAT) address"
    if ip.is_reserved:
        return f"{address} is a reserved address"
    if ip.is_private or not ip.is_global:
        return f"{address} is a private address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
