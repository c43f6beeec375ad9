"""Where the server may send a request: the outbound policy every connector request obeys.

A connection's settings are typed by editors, and the server holds the owner's
credentials; a settings field must never become a way to make the server carry a
token somewhere else, or to read an internal service through it. So every request
the server makes (:class:`~personalize.sync.http.HttpClient` is the one way to make
one) passes two checks:

1. **By name**, before anything is sent (:meth:`OutboundPolicy.check_url`): ``https``
   only; no user name or password in the address; the host must match the
   connector's own API hosts (:attr:`personalize.connectors.Connector.allowed_hosts`,
   e.g. ``*.myshopify.com``) on port 443, or, for a connector that declares none, be
   a public host name or a public address. IP addresses in any spelling
   (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) are read the way the
   resolver would read them.
2. **By address**, when the connection is opened (:meth:`OutboundPolicy.check_addresses`):
   every address the name resolves to must be public; the connection then goes to
   the address that was checked, so a name that resolves to a public address first
   and to ``127.0.0.1`` a moment later (DNS rebinding) cannot slip through.

Refused: private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local
(169.254/16, where cloud metadata lives, fe80::/10), shared (100.64/10),
multicast, unspecified, reserved, documentation and benchmark ranges, and IPv6
forms that carry an IPv4 address (``::ffff:a.b.c.d``, 6to4, NAT64), judged by the
address inside.

The server operator may trust more hosts with ``OUTBOUND_ALLOWED_HOSTS``: an API
proxy, a test server. A listed host is reached whatever it resolves to, over
``http`` or ``https``, on any port (or the port listed with it).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..connectors import ConfigError
from ..validation import whole_number

#: the server setting that trusts more hosts
SETTING = "OUTBOUND_ALLOWED_HOSTS"
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_BLOCKS = [(ipaddress.ip_network(net), kind) for net, kind in (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)]
_V6_BLOCKS = [(ipaddress.ip_network(net), kind) for net, kind in (
    ("::/8", "reserved (unspecified, loopback, IPv4-compatible)"),
    ("64:ff9b:1::/48", "reserved (local NAT64)"),
    ("100::/64", "reserved (discard)"),
    ("2001::/23", "reserved (IETF protocol assignments, Teredo)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("fc00::/7", "unique-local (private; cloud metadata)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LEGACY_V4 = re.compile(r"[0-9a-fA-FxX.]+")


class OutboundRefused(ConfigError):
    """A request the outbound policy does not allow; the message says why and what to do."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, NAT64), else None."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _SIXTOFOUR:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why the server never connects to ``ip`` (``"loopback"``, ``"private"``…), or None for a public address."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return blocked_reason(inner)
    blocks = _V4_BLOCKS if ip.version == 4 else _V6_BLOCKS
    for network, kind in blocks:
        if ip in network:
            return kind
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "not public"
    return None


def ip_literal(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, in any spelling the system resolver accepts.

    Besides the usual forms this reads what ``inet_aton`` reads: ``2130706433``,
    ``0x7f.1``, ``0177.0.0.1``, ``127.1`` are all 127.0.0.1 to ``getaddrinfo``.
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_V4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def normal_host(host: str) -> str:
    """A host as compared with patterns: lower case, without brackets or a final dot, IDNA-encoded,
    IP addresses in their canonical spelling."""
    host = (host or "").strip().strip("[]").rstrip(".").lower()
    if not host:
        raise OutboundRefused("the address has no host name")
    ip = ip_literal(host)
    if ip is not None:
        return str(ip)
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise OutboundRefused(f"{host} is not a valid host name") from None
    return host


def host_matches(pattern: str, host: str) -> bool:
    """``api.hubapi.com`` matches itself; ``*.myshopify.com`` matches exactly one more label
    (``my-store.myshopify.com``, not ``a.b.myshopify.com`` nor ``myshopify.com``)."""
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(dot) and rest == pattern[2:] and bool(_LABEL.fullmatch(label))
    if ip_literal(pattern) is not None:
        return str(ip_literal(pattern)) == host
    return host == pattern


def check_pattern(pattern: str) -> str | None:
    """What is wrong with a host pattern (``api.example.com`` or ``*.example.com``), or None."""
    name = pattern.lower().rstrip(".")
    if ip_literal(name.strip("[]")) is not None:
        return None
    if name.startswith("*."):
        name = name[2:]
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return f"{pattern!r} is not a host name or *.domain pattern"
    return None


@dataclass(frozen=True)
class HostRule:
    """One trusted host of ``OUTBOUND_ALLOWED_HOSTS``: a host or ``*.domain``, optionally with a port."""

    pattern: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        return host_matches(self.pattern, host) and (self.port is None or self.port == port)

    def __str__(self) -> str:
        host = f"[{self.pattern}]" if ":" in self.pattern else self.pattern
        return host if self.port is None else f"{host}:{self.port}"


def parse_allowed_hosts(value: Any) -> tuple[HostRule, ...]:
    """The rules of ``OUTBOUND_ALLOWED_HOSTS``: a comma- or space-separated text, or a list.

    Entries: ``host``, ``host:port``, ``*.domain``, ``*.domain:port``, an IPv4 address,
    an IPv6 address (``[…]:port`` with a port). Raises ValueError naming a bad entry.
    """
    if value in (None, ""):
        return ()
    items = value if isinstance(value, list | tuple) else re.split(r"[\s,]+", str(value))
    rules = []
    for raw in items:
        entry = str(raw).strip()
        if not entry:
            continue
        if entry == "*" or entry.startswith("*:"):
            raise ValueError(f"{SETTING}: {entry!r} would trust every host; list the hosts one by one")
        host, port = entry, None
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest:
                if not rest.startswith(":") or whole_number(rest[1:]) is None:
                    raise ValueError(f"{SETTING}: {entry!r} is not [IPv6 address]:port")
                port = int(rest[1:])
        elif entry.count(":") == 1:
            host, _, digits = entry.partition(":")
            if whole_number(digits) is None:
                raise ValueError(f"{SETTING}: {entry!r} is not host:port")
            port = int(digits)
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"{SETTING}: {entry!r} has no valid port")
        problem = check_pattern(host)
        if problem:
            raise ValueError(f"{SETTING}: {problem}")
        ip = ip_literal(host)
        rules.append(HostRule(str(ip) if ip is not None else host.lower().rstrip("."), port))
    return tuple(rules)


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses one client may reach.

    :param provider_hosts: the connector's API host patterns; empty: any public host.
    :param provider: the provider's name for messages ("HubSpot").
    :param trusted: the operator's ``OUTBOUND_ALLOWED_HOSTS`` rules.
    """

    provider_hosts: tuple[str, ...] = ()
    provider: str = ""
    trusted: tuple[HostRule, ...] = ()

    def trusts(self, host: str, port: int) -> bool:
        """True when the operator listed this host (and port) in ``OUTBOUND_ALLOWED_HOSTS``."""
        return any(rule.matches(host, port) for rule in self.trusted)

    def check_url(self, url: str) -> None:
        """Raise :class:`OutboundRefused` unless ``url`` may be requested (the check by name)."""
        try:
            parts = parse_url(url)
        except LocationParseError:
            raise OutboundRefused(f"{url!r} is not a valid address") from None
        scheme = (parts.scheme or "").lower()
        if scheme not in DEFAULT_PORTS:
            raise OutboundRefused("the address must start with https://")
        if parts.auth:
            raise OutboundRefused("the address may not carry a user name or password (before an @)")
        host = normal_host(parts.host or "")
        port = parts.port or DEFAULT_PORTS[scheme]
        if self.trusts(host, port):
            return
        if scheme != "https":
            raise OutboundRefused(f"{host}: use https://; plain http is only allowed for hosts the server operator trusts ({SETTING})")
        ip = ip_literal(host)
        if self.provider_hosts:
            if ip is not None or not any(host_matches(p, host) for p in self.provider_hosts):
                raise OutboundRefused(
                    f"{host} is not {_an(self.provider or 'provider')} API host; allowed: {', '.join(self.provider_hosts)}"
                    f" (the server operator can trust other hosts, such as a proxy, with {SETTING})"
                )
            if port != 443:
                raise OutboundRefused(f"{host}: {self.provider or 'the provider'}'s API is reached on port 443 only")
            return
        if ip is not None:
            reason = blocked_reason(ip)
            if reason:
                raise OutboundRefused(f"{host} is a {reason} address; the server does not send requests there")
        elif host == "localhost" or host.endswith(".localhost") or "." not in host:
            raise OutboundRefused(f"{host} is not a public host name; the server does not send requests there")

    def check_addresses(self, host: str, port: int, addresses: Iterable[str]) -> None:
        """Raise :class:`OutboundRefused` when a name resolved to any address the server never connects to
        (the check at connect time; every address is checked, not only the first)."""
        host = normal_host(host)
        if self.trusts(host, port):
            return
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            reason = blocked_reason(ip)
            if reason:
                shown = host if ip_literal(host) is None else "the address"
                raise OutboundRefused(
                    f"{shown} resolves to a {reason} address; the server does not connect there"
                    f" (a host the server operator trusts can be listed in {SETTING})"
                )


def _an(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def policy_for(connector: Any, config: Any) -> OutboundPolicy:
    """The policy of a connector class under a server's configuration (a mapping with ``OUTBOUND_ALLOWED_HOSTS``)."""
    return OutboundPolicy(
        provider_hosts=tuple(getattr(connector, "allowed_hosts", ()) or ()),
        provider=getattr(connector, "title", "") or getattr(connector, "name", ""),
        trusted=parse_allowed_hosts(config.get(SETTING)),
    )
