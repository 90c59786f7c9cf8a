"""Where webhooks may be delivered: a guard against server-side request forgery (SSRF).

A target is refused when the address it resolves to is not a public unicast address: loopback, private,
link-local (cloud metadata at 169.254.169.254 included), carrier-grade NAT, multicast, reserved, unspecified,
documentation and the like, in IPv4 or IPv6, including IPv4 addresses wrapped in IPv6 (::ffff:127.0.0.1, 6to4,
NAT64). An operator allowlist of networks and host names opens specific targets.

The check that counts is at connection time: `GuardedResolver` is the HTTP client's resolver, so the addresses it
lets through are the only ones the client can connect to, and a name that resolves to a public address when the
webhook is created and to a private one later (DNS rebinding) is still refused. Hosts written as IP literals never
reach a resolver and are checked by `check_literal` before each request.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Special-purpose ranges (IANA registries) that older Python releases do not flag in `ipaddress`.
_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "fec0::/10",  # site-local (deprecated)
        "2001::/23",  # IETF protocol assignments (Teredo included)
        "100::/64",  # discard
        "5f00::/16",  # segment routing
    )
)
# Documentation ranges (RFC 5737, RFC 3849, RFC 9637): named as such, not as "private" as `ipaddress` has them.
_DOCUMENTATION = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
RESOLVE_TIMEOUT_SECONDS = 5.0


class EgressRefusedError(OSError):
    """The target resolves only to addresses the egress policy refuses; the message says which and why."""


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _category(ip: IPAddress) -> str | None:
    """Why `ip` (an IPv4 address already taken out of any IPv6 wrapping) is not public unicast, as a noun phrase
    ("a loopback address"), or None."""
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a carrier-grade NAT address"),
        (any(ip in n for n in _DOCUMENTATION if n.version == ip.version), "a documentation address"),
        (ip.is_reserved or any(ip in n for n in _SPECIAL if n.version == ip.version), "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a publicly routable address"),
    )
    return next((name for hit, name in checks if hit), None)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Public addresses only, except the networks and host names an operator allows."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, allow: str) -> EgressPolicy:
        """From a comma-separated list of CIDRs, addresses and host names ("10.0.0.0/8, ::1, hooks.internal")."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for item in (part.strip() for part in allow.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                if not _is_host_name(item):
                    raise ValueError(f"not a network, address or host name: {item!r}") from None
                hosts.add(item.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    @property
    def allows_loopback(self) -> bool:
        return all(
            any(loop.network_address in n and loop.broadcast_address in n for n in self.networks) for loop in _LOOPBACK
        )

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why a connection to `ip` (for `host`) is refused ("10.0.0.1 is a private address"), or None."""
        found = self._refused(host, ip)
        return None if found is None else f"{found[0]} is {found[1]}"

    def _refused(self, host: str, ip: IPAddress) -> tuple[str, str] | None:
        """The refused address as written in messages, and what it is ("a loopback address (inside ...)")."""
        inner = _embedded_v4(ip)
        target = inner or ip
        if host.lower().rstrip(".") in self.hosts or any(a in n for a in {ip, target} for n in self.networks):
            return None
        category = _category(target)
        if category is None:
            return None
        return str(target), category + (f" (inside the IPv6 address {ip})" if inner else "")

    def check_literal(self, host: str) -> None:
        """Raise EgressRefusedError if `host` is an IP literal the policy refuses (names are checked on resolving)."""
        if (reason := _literal_refusal(self, host)) is not None:
            raise EgressRefusedError(f"refused by the egress policy: {reason}")

    async def check_target(self, host: str) -> None:
        """At creation: refuse a literal or a name resolving to any refused address. A name that does not resolve
        now is let through: it is checked again, address by address, at every delivery."""
        self.check_literal(host)
        if ip_literal(host) is not None:
            return
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            return
        for info in infos:
            found = self._refused(host, ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            if found is not None:
                address, what = found
                raise EgressRefusedError(f"{host} resolves to {address}, {what}, which the egress policy refuses")


class GuardedResolver(AbstractResolver):
    """The HTTP client's resolver: only addresses the policy allows are returned, so only they are connected to."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: list[str] = []
        for result in results:
            reason = self._policy.refusal(host, ipaddress.ip_address(result["host"].split("%")[0]))
            if reason is None:
                allowed.append(result)
            else:
                refused.append(reason)
        if not allowed:
            raise EgressRefusedError(f"refused by the egress policy: {'; '.join(refused)}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@functools.lru_cache(maxsize=4096)
def _literal_refusal(policy: EgressPolicy, host: str) -> str | None:
    """Why `policy` refuses the IP literal `host`, or None (also for a name). Cached: every delivery to a host asks
    again, and the answer depends only on the (immutable) policy and the host."""
    ip = ip_literal(host)
    return None if ip is None else policy.refusal(host, ip)


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` writes literally ("[::1]", "10.0.0.1.", "fe80::1%eth0"), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0].rstrip("."))
    except ValueError:
        return None


def _is_host_name(item: str) -> bool:
    labels = item.rstrip(".").split(".")
    return all(0 < len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
