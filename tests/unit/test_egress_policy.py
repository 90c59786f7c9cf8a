"""The egress policy: which webhook targets are refused, and what an operator's allowlist opens."""

from __future__ import annotations

import ipaddress
import re

import pytest

from shared.delivery.egress import EgressPolicy, EgressRefusedError

pytestmark = pytest.mark.unit

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "::1": "loopback",
    "10.0.0.1": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "0.0.0.0": "unspecified",  # noqa: S104 - an address under test, not a binding
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "fc00::1": "private",
    "192.0.2.10": "documentation",  # TEST-NET-1
    "198.51.100.7": "documentation",  # TEST-NET-2
    "203.0.113.1": "documentation",  # TEST-NET-3
    "2001:db8::1": "documentation",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "link-local",
    "2002:7f00:1::": "loopback",  # 6to4 wrapping 127.0.0.1
    "64:ff9b::a00:1": "private",  # NAT64 wrapping 10.0.0.1
    # Ranges Python 3.11's ipaddress does not flag, refused from an explicit list.
    "fec0::1": "reserved",
    "192.0.0.8": "reserved",
    "192.88.99.1": "reserved",
    "3fff::1": "documentation",
    "127.0.0.1.": "loopback",  # a literal with the root's trailing dot
}


@pytest.mark.parametrize(("address", "category"), sorted(REFUSED.items()))
def test_special_addresses_are_refused_with_their_category(address: str, category: str) -> None:
    reason = EgressPolicy().refusal("example.org", ipaddress.ip_address(address.rstrip(".")))
    assert reason is not None and category in reason, reason
    with pytest.raises(EgressRefusedError, match=category):
        EgressPolicy().check_literal(address)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),  # noqa: S104 - an address under test, not a binding
        ("192.0.2.1", "192.0.2.1 is a documentation address"),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("::ffff:10.0.0.1", "10.0.0.1 is a private address (inside the IPv6 address ::ffff:a00:1)"),
    ],
)
def test_refusals_read_as_english(address: str, message: str) -> None:
    assert EgressPolicy().refusal("example.org", ipaddress.ip_address(address)) == message


@pytest.mark.parametrize("address", sorted(REFUSED))
def test_no_refusal_has_a_wrong_article(address: str) -> None:
    reason = EgressPolicy().refusal("example.org", ipaddress.ip_address(address.rstrip(".")))
    assert reason is not None
    assert not re.search(r"\ba [aeiou]|\ba not\b", reason), reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert EgressPolicy().refusal("example.org", ipaddress.ip_address(address)) is None
    EgressPolicy().check_literal(address)


def test_an_allowlist_opens_networks_and_host_names_only() -> None:
    policy = EgressPolicy.parse(" 10.1.0.0/16, ::1 ,hooks.internal.")
    assert policy.refusal("x", ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal("x", ipaddress.ip_address("10.2.0.1")) is not None
    assert policy.refusal("x", ipaddress.ip_address("::1")) is None
    assert policy.refusal("x", ipaddress.ip_address("127.0.0.1")) is not None
    assert policy.refusal("Hooks.Internal", ipaddress.ip_address("192.168.0.5")) is None
    assert not policy.allows_loopback
    assert EgressPolicy.parse("127.0.0.0/8,::1").allows_loopback


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not a host!", "a..b"])
def test_a_bad_allowlist_entry_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a network"):
        EgressPolicy.parse(bad)


async def test_names_are_checked_by_what_they_resolve_to() -> None:
    loopback = r"localhost resolves to (127\.0\.0\.1|::1), a loopback address, which the egress policy refuses"
    with pytest.raises(EgressRefusedError, match=loopback):
        await EgressPolicy().check_target("localhost")
    await EgressPolicy.parse("127.0.0.0/8,::1").check_target("localhost")
    # A name that does not resolve now is checked at delivery instead.
    await EgressPolicy().check_target("no-such-host.invalid")
