"""The outbound policy: what the host allows beyond the defaults, what it always refuses, and
the decisions made from it. Pure, apart from reading the environment.

Where the policy comes from, at every check (create time and each run):

1. the policy passed to :func:`configure_outbound`, when the host called it (process-wide);
2. otherwise the environment, read afresh each time: ``RUNKIT_OUTBOUND_ALLOW``,
   ``RUNKIT_OUTBOUND_DENY``, ``RUNKIT_OUTBOUND_PORTS``, ``RUNKIT_OUTBOUND_PROXY``.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .addresses import (
    BadAddress,
    IPAddress,
    Network,
    classify,
    embedded_ipv4,
    is_localhost_name,
    parse_literal,
)

ALLOW_ENV = "RUNKIT_OUTBOUND_ALLOW"
DENY_ENV = "RUNKIT_OUTBOUND_DENY"
PORTS_ENV = "RUNKIT_OUTBOUND_PORTS"
PROXY_ENV = "RUNKIT_OUTBOUND_PROXY"
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Redirect hops followed at most; each one is checked like the first URL.
MAX_REDIRECTS = 5

#: ``resolver(host, port)``: the addresses of ``host``, as strings. None: the system's.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


def _entries(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for entry in value:
        _parse_entry(entry, attribute.name)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # one entry given bare: never split into characters
        return (value,)
    return tuple(value)


def _ports(_: Any, attribute: attrs.Attribute[Any], value: tuple[int, ...] | None) -> None:
    if value is not None and not all(1 <= p <= 65535 for p in value):
        raise ValueError(f"{attribute.name}: ports are 1 to 65535")


@attrs.frozen
class OutboundPolicy:
    """How the host widens or narrows the outbound guard.

    ``allow``: CIDRs (``10.1.0.0/16``), addresses and host names allowed even if they (or
    what they resolve to) are private, loopback, ...; a name entry ``*.corp.example`` also
    matches its subdomains. ``deny``: the same forms, always refused (deny wins over allow).
    ``ports``: the only ports allowed (None: any). ``proxy``: an HTTP(S) proxy URL that every
    request goes through (None: direct; proxy environment variables are never read).
    ``resolver``: an async ``(host, port) -> [address, ...]`` used instead of the system's."""

    allow: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_entries)
    deny: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_entries)
    ports: tuple[int, ...] | None = attrs.field(default=None, validator=_ports)
    proxy: str | None = None
    resolver: Resolver | None = attrs.field(default=None, eq=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutboundPolicy:
        """The policy the ``RUNKIT_OUTBOUND_*`` variables describe (comma-separated lists);
        a bad entry raises ValueError naming the variable."""
        env = os.environ if environ is None else environ

        def items(name: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())

        try:
            ports = tuple(int(p) for p in items(PORTS_ENV)) or None
            return cls(
                allow=items(ALLOW_ENV),
                deny=items(DENY_ENV),
                ports=ports,
                proxy=env.get(PROXY_ENV, "").strip() or None,
            )
        except ValueError as exc:
            raise ValueError(f"invalid outbound setting ({exc})") from None


_configured: OutboundPolicy | None = None
_lock = threading.Lock()


def configure_outbound(policy: OutboundPolicy | None) -> None:
    """Use ``policy`` for every outbound call of this process from now on; None goes back to
    reading the ``RUNKIT_OUTBOUND_*`` environment variables at each check."""
    global _configured
    with _lock:
        _configured = policy


def current_policy() -> OutboundPolicy:
    configured = _configured
    return configured if configured is not None else OutboundPolicy.from_env()


# --- rules compiled from a policy -------------------------------------------------------------
@attrs.frozen
class _Rules:
    networks: tuple[Network, ...]
    names: frozenset[str]
    suffixes: tuple[str, ...]  # ".corp.example" for "*.corp.example"

    def has_name(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.names or any(name.endswith(s) for s in self.suffixes)

    def has_address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


def _parse_entry(entry: str, setting: str) -> Network | str:
    text = entry.strip()
    try:
        if "/" in text:
            return ipaddress.ip_network(text.strip("[]"), strict=False)
        literal = parse_literal(text)
    except (ValueError, BadAddress) as exc:
        raise ValueError(f"{setting}: {entry!r} is neither a CIDR nor a host name") from exc
    if literal is not None:
        return ipaddress.ip_network(literal)
    name = text.lower().rstrip(".")
    label = name[2:] if name.startswith("*.") else name
    if not label or any(c in label for c in " /@?#[]") or "*" in label:
        raise ValueError(f"{setting}: {entry!r} is neither a CIDR nor a host name")
    return name


@functools.lru_cache(maxsize=64)
def _rules(entries: tuple[str, ...]) -> _Rules:
    networks: list[Network] = []
    names: set[str] = set()
    suffixes: list[str] = []
    for entry in entries:
        parsed = _parse_entry(entry, "entry")
        if isinstance(parsed, str):
            if parsed.startswith("*."):
                suffixes.append(parsed[1:])
            else:
                names.add(parsed)
        else:
            networks.append(parsed)
    return _Rules(tuple(networks), frozenset(names), tuple(suffixes))


class Refused(Exception):
    """A destination the guard refuses; ``str()`` says which and why (the address class)."""


def _address_forms(ip: IPAddress) -> list[IPAddress]:
    inner = embedded_ipv4(ip)
    return [ip] if inner is None else [ip, inner[1]]


def address_refusal(policy: OutboundPolicy, ip: IPAddress, *, host_allowed: bool) -> str | None:
    """Why ``ip`` is refused, as a phrase to follow "<ip> is" or "<host> resolves to <ip>,"
    (None: allowed). ``host_allowed``: the name it came from is on the allow list, which
    allows whatever it resolves to (deny still wins)."""
    if any(_rules(policy.deny).has_address(form) for form in _address_forms(ip)):
        return f"denied by the outbound policy ({DENY_ENV})"
    allow = _rules(policy.allow)
    mapped = embedded_ipv4(ip)
    unwrapped = mapped[1] if mapped and mapped[0] == "IPv4-mapped IPv6" else None
    if host_allowed or allow.has_address(ip) or (unwrapped and allow.has_address(unwrapped)):
        return None
    found = classify(ip)
    if found is None:
        return None
    return f"a {found} address, refused by default (allow it with {ALLOW_ENV})"


@attrs.frozen
class Target:
    """A destination that passed the checks made without resolving."""

    host: str
    port: int
    literal: IPAddress | None
    host_allowed: bool


def check_destination(policy: OutboundPolicy, scheme: str, host: str, port: int | None) -> Target:
    """The checks that need no resolution: scheme, port, literal address, localhost and
    denied names. Raises :class:`Refused`; returns what the connection step still needs."""
    if scheme not in SCHEMES:
        raise Refused(f"scheme {scheme!r} is refused: only http and https")
    if not host:
        raise Refused("the URL has no host")
    port = port if port is not None else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise Refused(f"port {port} is out of range")
    return check_host(policy, host, port)


def check_host(policy: OutboundPolicy, host: str, port: int) -> Target:
    """:func:`check_destination` for a connection (no scheme): what the network backend
    checks again for each connection it opens."""
    if policy.ports is not None and port not in policy.ports:
        raise Refused(f"port {port} is not allowed ({PORTS_ENV})")
    try:
        literal = parse_literal(host)
    except BadAddress as exc:
        raise Refused(f"{exc}: refused") from None
    if literal is not None:
        why = address_refusal(policy, literal, host_allowed=False)
        if why is not None:
            raise Refused(f"{literal} is {why}")
        return Target(host, port, literal, host_allowed=False)
    if _rules(policy.deny).has_name(host):
        raise Refused(f"{host} is denied by the outbound policy ({DENY_ENV})")
    allowed = _rules(policy.allow).has_name(host)
    if is_localhost_name(host) and not allowed:
        raise Refused(f"{host} is a loopback name, refused by default (allow it with {ALLOW_ENV})")
    return Target(host, port, None, host_allowed=allowed)


def checked_addresses(
    policy: OutboundPolicy, target: Target, answers: Sequence[str]
) -> list[IPAddress]:
    """The resolved ``answers`` for ``target``, in order and without repeats, when every one
    is allowed; :class:`Refused` naming the first refused address otherwise."""
    out: list[IPAddress] = []
    for answer in answers:
        try:
            ip = ipaddress.ip_address(answer.split("%", 1)[0])
        except ValueError:  # a custom resolver's mistake: refuse rather than guess
            raise Refused(f"{target.host} resolves to {answer!r}, which is no address") from None
        if ip in out:
            continue
        why = address_refusal(policy, ip, host_allowed=target.host_allowed)
        if why is not None:
            raise Refused(f"{target.host} resolves to {ip}, {why}")
        out.append(ip)
    if not out:
        raise Refused(f"{target.host} resolves to no address")
    return out


def url_refusal(url: str, policy: OutboundPolicy | None = None) -> str | None:
    """Why ``url`` is refused before any lookup (a 422 at create time), or None. Parsed by
    httpx, the parser that will send it, so that both read the same host."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        return f"invalid URL: {exc}"
    try:
        check_destination(
            policy or current_policy(), parsed.scheme, parsed.raw_host.decode(), parsed.port
        )
    except Refused as exc:
        return str(exc)
    return None
