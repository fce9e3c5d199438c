"""Which addresses the outbound guard refuses by default, and how a host spells one.

Pure functions on :mod:`ipaddress` objects: no I/O, no resolution. The tables are explicit
rather than ``is_private``/``is_global`` alone, because those flags have changed between
Python releases (3.11.10 and 3.12.4 moved several ranges); an explicit table refuses the same
ranges on every interpreter, and ``is_global`` stays as a last net for anything it misses.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Order matters: the first class that contains an address names it, so the narrow ranges
# (the metadata endpoints) come before the ranges that hold them.
_IPV4_CLASSES: tuple[tuple[str, tuple[Network, ...]], ...] = (
    ("cloud metadata", _nets("169.254.169.254/32", "100.100.100.200/32")),
    ("unspecified", _nets("0.0.0.0/8")),
    ("loopback", _nets("127.0.0.0/8")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local", _nets("169.254.0.0/16")),
    ("carrier-grade NAT", _nets("100.64.0.0/10")),
    ("multicast", _nets("224.0.0.0/4")),
    (
        "reserved",
        _nets(
            "192.0.0.0/24",  # IETF protocol assignments
            "192.0.2.0/24",  # documentation
            "198.51.100.0/24",
            "203.0.113.0/24",
            "198.18.0.0/15",  # benchmarking
            "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
            "240.0.0.0/4",  # future use, and the broadcast address
        ),
    ),
)

_IPV6_CLASSES: tuple[tuple[str, tuple[Network, ...]], ...] = (
    ("cloud metadata", _nets("fd00:ec2::254/128")),
    ("unspecified", _nets("::/128")),
    ("loopback", _nets("::1/128")),
    ("private", _nets("fc00::/7", "fec0::/10", "64:ff9b:1::/48")),  # ULA, site-local, local NAT64
    ("link-local", _nets("fe80::/10")),
    ("multicast", _nets("ff00::/8")),
    (
        "reserved",
        _nets(
            "::/8",  # IPv4-compatible and other IETF-reserved forms
            "100::/64",  # discard-only
            "2001::/23",  # IETF protocol assignments (Teredo is unwrapped before this)
            "2001:db8::/32",  # documentation
            "3fff::/20",
            "5f00::/16",  # SRv6 SIDs
        ),
    ),
)

_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated


def embedded_ipv4(ip: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, and the form that carries it: IPv4-mapped
    (``::ffff:a.b.c.d``, what a dual-stack socket connects to), IPv4-translated, NAT64
    (``64:ff9b::/96``), 6to4 (``2002::/16``) or Teredo (the client address)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped IPv6", ip.ipv4_mapped
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIIT:
        return "IPv4-translated IPv6", low32
    if ip in _NAT64:
        return "NAT64", low32
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    return None


def _table_class(ip: IPAddress) -> str | None:
    table = _IPV4_CLASSES if isinstance(ip, ipaddress.IPv4Address) else _IPV6_CLASSES
    for name, networks in table:
        if any(ip in net for net in networks):
            return name
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return "reserved"
    if not ip.is_global:  # a range the tables do not name yet
        return "non-global"
    return None


def classify(ip: IPAddress) -> str | None:
    """The class that makes ``ip`` refused by default (``"loopback"``, ``"private"``,
    ``"link-local"``, ``"cloud metadata"``, ``"carrier-grade NAT"``, ``"multicast"``,
    ``"reserved"``, ``"unspecified"``, ``"non-global"``), followed by ``" behind <form>"`` when
    it hides in an IPv6 form; None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    inner = embedded_ipv4(ip)
    if inner is not None:
        form, v4 = inner
        found = _table_class(v4)
        if found is not None:
            return f"{found} behind {form}"
        if form in ("IPv4-mapped IPv6", "IPv4-translated IPv6", "NAT64"):
            # The connection reaches that public IPv4 address (NAT64: through the network's
            # translator, which an IPv6-only host needs for every IPv4 destination).
            return None
    return _table_class(ip)


# --- how a URL spells an address -------------------------------------------------------------
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL = re.compile(r"0[0-7]+")


class BadAddress(ValueError):
    """A host that reads as an IPv4 or IPv6 address but is none."""


def _ipv4_part(part: str) -> int:
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        if not _OCTAL.fullmatch(part):
            raise BadAddress(f"invalid octal part {part!r}")
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    raise BadAddress(f"invalid number {part!r}")


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as the IPv4 address a URL parser (WHATWG) or ``inet_aton`` reads in it, with
    decimal (``2130706433``), octal (``0177.0.0.1``), hex (``0x7f000001``) and short
    (``127.1``) spellings normalised; None when ``host`` is a name. A host that ends in a
    number but is no valid address (``1.2.3.4.5``, ``1.2.3.999``) raises :class:`BadAddress`:
    it would otherwise go to the resolver, which may read it another way."""
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()  # one trailing dot is allowed
    last = parts[-1] if parts else ""
    if not (_DECIMAL.fullmatch(last) or _HEX.fullmatch(last)):
        return None
    if len(parts) > 4:
        raise BadAddress(f"{host!r} has more than 4 parts")
    numbers = [_ipv4_part(p) for p in parts]
    *head, tail = numbers
    if any(n > 255 for n in head) or tail >= 256 ** (5 - len(numbers)):
        raise BadAddress(f"{host!r} is out of range")
    value = tail
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_literal(host: str) -> IPAddress | None:
    """The address ``host`` (as a URL carries it: IPv6 with or without brackets, a zone as
    ``%25eth0`` or ``%eth0``) spells, or None when it is a host name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        bare = bare.split("%", 1)[0]  # a zone only picks the interface
        try:
            return ipaddress.IPv6Address(bare)
        except ValueError as exc:
            raise BadAddress(f"invalid IPv6 address {host!r}") from exc
    return parse_ipv4(bare)


def is_localhost_name(name: str) -> bool:
    """``localhost`` and ``*.localhost`` name the loopback interface by definition (RFC 6761
    §6.3), whatever a resolver answers, so they are loopback without a lookup."""
    name = name.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")
