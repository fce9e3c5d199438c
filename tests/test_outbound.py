"""The outbound guard: the address classifier (pure, on every refused range, no connection),
IPv4 spellings, the policy and its settings, and the guard on real local connections
(pinning, redirects, proxies, limits). Every connection stays on loopback: refused
destinations are 127.0.0.2 and ::1, each with a listener that must see nothing."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest

from runkit.authoring import Fatal, Retryable
from runkit.kinds.web import OutboundPolicy, configure_outbound, current_policy
from runkit.kinds.web.addresses import BadAddress, classify, parse_ipv4, parse_literal
from runkit.kinds.web.display import redact_headers, redact_url, size
from runkit.kinds.web.errors import BlockedDestination, TooManyRedirects
from runkit.kinds.web.exchange import Exchange, Outbound, check_status, retry_after
from runkit.kinds.web.guard import GuardedBackend, outbound_client, pin_backend, send
from runkit.kinds.web.policy import Refused, check_destination, url_refusal
from web_support import LocalServer, serving

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _clean_policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("ALLOW", "DENY", "PORTS", "PROXY"):
        monkeypatch.delenv(f"RUNKIT_OUTBOUND_{name}", raising=False)
    configure_outbound(None)
    yield
    configure_outbound(None)


@pytest.fixture
def refused6() -> Iterator[LocalServer]:
    with serving("::1") as s:
        yield s


def allow_only(server: LocalServer) -> OutboundPolicy:
    return OutboundPolicy(allow=(server.host,))


# --- the classifier: pure, every range, no connection ------------------------------------------
@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.0.8", "reserved"),
        ("192.0.2.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("203.0.113.7", "reserved"),
        ("2001:db8::1", "reserved"),
        ("100::1", "reserved"),
        ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
        ("4000::1", "reserved"),  # outside global unicast
        # The same, hidden in IPv6 forms.
        ("::ffff:127.0.0.2", "loopback behind IPv4-mapped IPv6"),
        ("::ffff:169.254.169.254", "cloud metadata behind IPv4-mapped IPv6"),
        ("::ffff:10.0.0.1", "private behind IPv4-mapped IPv6"),
        ("::ffff:0:7f00:1", "loopback behind IPv4-translated IPv6"),
        ("64:ff9b::7f00:1", "loopback behind NAT64"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata behind NAT64"),
        ("64:ff9b:1::a00:1", "private"),  # local-use NAT64
        ("2002:7f00:1::1", "loopback behind 6to4"),
        ("2002:c0a8:101::1", "private behind 6to4"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback behind Teredo"),
    ],
)
def test_refused_ranges(address: str, expected: str) -> None:
    assert classify(ipaddress.ip_address(address)) == expected


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",  # just below carrier-grade NAT
        "100.128.0.0",  # just above
        "172.32.0.1",  # just above 172.16/12
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",  # a mapped public address is that address
        "64:ff9b::808:808",  # NAT64 of a public address
        "2002:808:808::1",  # 6to4 of a public address
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000002", "127.0.0.2"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.0.02", "127.0.0.2"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.0.0.0x2", "127.0.0.2"),
        ("017700000001", "127.0.0.1"),
        ("3232235777", "192.168.1.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("1.2.3.4.", "1.2.3.4"),
    ],
)
def test_ipv4_spellings_are_normalised(spelling: str, address: str) -> None:
    assert parse_ipv4(spelling) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["1.2.3.4.5", "1.2.3.256", "4294967296", "08.0.0.1", "0x.1.2.q1"])
def test_numeric_hosts_that_are_no_address_are_refused(host: str) -> None:
    if host == "0x.1.2.q1":  # ends in a name: a host name, for the resolver
        assert parse_ipv4(host) is None
        return
    with pytest.raises(BadAddress):
        parse_ipv4(host)


def test_literals_and_names() -> None:
    assert parse_literal("[::1]") == ipaddress.IPv6Address("::1")
    assert parse_literal("fe80::1%25eth0") == ipaddress.IPv6Address("fe80::1")
    assert parse_literal("example.com") is None
    assert parse_literal("1e100.net") is None  # ends in a name
    with pytest.raises(BadAddress):
        parse_literal("[::g]")


# --- the policy ------------------------------------------------------------------------------
def test_policy_from_environment_at_each_check(monkeypatch: pytest.MonkeyPatch) -> None:
    assert url_refusal("http://10.0.0.5/") is not None
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", "10.0.0.0/8, intranet.corp")
    monkeypatch.setenv("RUNKIT_OUTBOUND_DENY", "10.9.0.0/16,*.bad.example")
    monkeypatch.setenv("RUNKIT_OUTBOUND_PORTS", "80,443,8443")
    monkeypatch.setenv("RUNKIT_OUTBOUND_PROXY", "http://127.0.0.1:3128")
    policy = current_policy()
    assert policy.allow == ("10.0.0.0/8", "intranet.corp")
    assert policy.ports == (80, 443, 8443) and policy.proxy == "http://127.0.0.1:3128"
    assert url_refusal("http://10.0.0.5/") is None
    assert "denied" in (url_refusal("http://10.9.1.1/") or "")
    assert "denied" in (url_refusal("https://x.bad.example/") or "")
    assert "port 8080" in (url_refusal("http://example.com:8080/") or "")
    assert url_refusal("https://example.com:8443/") is None


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", "10.0.0.0/33")
    with pytest.raises(ValueError, match="allow"):
        current_policy()
    with pytest.raises(ValueError, match="deny"):
        OutboundPolicy(deny=("a b",))


def test_configured_policy_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", "10.0.0.0/8")
    configure_outbound(OutboundPolicy(deny=("example.net",)))
    assert url_refusal("http://10.0.0.5/") is not None
    assert url_refusal("http://example.net/") is not None
    configure_outbound(None)
    assert url_refusal("http://10.0.0.5/") is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1/", "scheme"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.2/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://localhost/", "loopback name"),
        ("http://api.localhost./", "loopback name"),
        ("http://0x7f000001/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://[::ffff:127.0.0.2]/", "loopback behind IPv4-mapped"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://100.64.1.1/", "carrier-grade NAT"),
        ("http://1.2.3.4.5/", "more than 4 parts"),
        ("http://example.com:99999/", "out of range"),
        ("http://0177.0.0.1/", "invalid URL"),  # httpx refuses the spelling itself
    ],
)
def test_url_refusals_before_any_lookup(url: str, reason: str) -> None:
    why = url_refusal(url)
    assert why is not None and reason in why, why


def test_allow_and_deny_entries() -> None:
    policy = OutboundPolicy(allow=("127.0.0.1", "localhost", "*.corp.example"), deny=("::1",))
    assert check_destination(policy, "http", "127.0.0.1", 80).literal is not None
    assert check_destination(policy, "http", "localhost", None).host_allowed
    assert check_destination(policy, "http", "a.b.corp.example", None).host_allowed
    assert not check_destination(policy, "http", "corp.example", None).host_allowed
    # An allowed address allows its IPv4-mapped form; deny wins over everything.
    check_destination(policy, "http", "::ffff:127.0.0.1", 80)
    with pytest.raises(Refused, match="denied"):
        check_destination(policy, "http", "::1", 80)
    with pytest.raises(Refused, match="loopback"):
        check_destination(policy, "http", "127.0.0.2", 80)


# --- small pieces ------------------------------------------------------------------------------
def test_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("3", now) == 3.0
    assert retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after("99999", now) == 600.0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None


def _exchange(status: int, headers: Sequence[tuple[str, str]] = ()) -> Exchange:
    return Exchange(
        "GET", "http://x/", "http://x/?token=abc", status, tuple(headers), b"", False, 1
    )


def test_check_status_retries_429_and_5xx_only() -> None:
    check_status(_exchange(204))
    check_status(_exchange(404), expect=[404])
    for status, retried in ((500, True), (503, True), (429, True), (404, False), (301, False)):
        with pytest.raises(Exception) as info:
            check_status(_exchange(status, [("Retry-After", "7")]))
        assert type(info.value).__name__ == "UnexpectedStatus"
        assert isinstance(info.value, Retryable if retried else Fatal)
        assert str(status) in str(info.value) and "abc" not in str(info.value)
        assert getattr(info.value, "retry_after", None) == (7.0 if retried else None)
    with pytest.raises(Exception, match=r"status 200 .*expected 201"):
        check_status(_exchange(200), expect=[201])


def test_redaction_helpers() -> None:
    shown = redact_headers(
        [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Api-Key", "k"), ("ETag", "v")]
    )
    assert shown == {"set-cookie": "[redacted], [redacted]", "x-api-key": "[redacted]", "etag": "v"}
    assert (
        redact_url("https://u:pw@h/p?api_key=K&q=1")
        == "https://u:[redacted]@h/p?api_key=[redacted]&q=1"
    )
    assert redact_url("https://h/p?q=1") == "https://h/p?q=1"
    assert [size(5), size(2048), size(3 * 1024 * 1024)] == ["5 B", "2.0 KiB", "3.0 MiB"]


def test_pinning_fails_loudly_if_httpx_moves_the_backend() -> None:
    transport = httpx.AsyncHTTPTransport()
    transport._pool = object()  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="cannot pin"):
        pin_backend(transport, OutboundPolicy())


async def test_guarded_client_has_the_guarded_backend() -> None:
    async with outbound_client(OutboundPolicy(), timeout=5) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, GuardedBackend)


# --- the guard on real (loopback) connections -------------------------------------------------
async def test_literal_refusals_reach_nobody(
    server: LocalServer, refused: LocalServer, refused6: LocalServer
) -> None:
    """The run-time guard on its own (no create-time check in front): every spelling of a
    refused address fails before any connection."""
    out = Outbound(policy=allow_only(server))
    p2, p6 = refused.port, refused6.port
    for url in (
        f"http://127.0.0.2:{p2}/",
        f"http://0x7f000002:{p2}/",
        f"http://2130706434:{p2}/",
        f"http://127.0.0.2.:{p2}/",
        f"http://[::ffff:127.0.0.2]:{p2}/",
        f"http://[::1]:{p6}/",
        f"http://localhost:{server.port}/json",  # a name: not the allowed address
    ):
        with pytest.raises(BlockedDestination):
            await out.request("GET", url)
    assert (refused.connections, refused6.connections, server.connections) == (0, 0, 0)
    # Without the allow entry even 127.0.0.1, in any spelling, is refused.
    for url in (f"http://0x7f000001:{server.port}/", f"http://2130706433:{server.port}/"):
        with pytest.raises(BlockedDestination, match="loopback"):
            await Outbound().request("GET", url)
    assert server.connections == 0
    # And allowed, a spelling of the allowed address is that address.
    done = await out.request("GET", f"http://2130706433:{server.port}/json")
    assert done.status == 200 and server.connections == 1


async def test_names_resolve_once_and_connect_to_the_checked_address(
    server: LocalServer, refused: LocalServer
) -> None:
    """A rebinding resolver answers the allowed address first, then a refused one: the
    guard asked once, and connected where it checked."""
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["127.0.0.2"]

    policy = OutboundPolicy(allow=("127.0.0.1",), resolver=rebinding)
    done = await Outbound(policy=policy).request(
        "GET", f"http://svc.test:{server.port}/echo", headers={"X-Trace": "1"}
    )
    assert done.status == 200 and calls == ["svc.test"]
    assert server.requests[0].headers["Host"] == f"svc.test:{server.port}"  # the name, not the IP
    assert refused.connections == 0


async def test_a_name_with_any_refused_address_is_blocked(
    server: LocalServer, refused: LocalServer
) -> None:
    async def two(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "127.0.0.2"]

    policy = OutboundPolicy(allow=("127.0.0.1",), resolver=two)
    with pytest.raises(BlockedDestination, match=r"svc.test resolves to 127.0.0.2, a loopback"):
        await Outbound(policy=policy).request("GET", f"http://svc.test:{refused.port}/")
    assert (server.connections, refused.connections) == (0, 0)


async def test_allowed_name_with_the_system_resolver(server: LocalServer) -> None:
    """``localhost`` is refused by name; allowed by name, it resolves (from /etc/hosts, no
    traffic) and reaches the server on 127.0.0.1."""
    with pytest.raises(BlockedDestination, match="loopback name"):
        await Outbound(policy=allow_only(server)).request(
            "GET", f"http://localhost:{server.port}/json"
        )
    assert server.connections == 0
    done = await Outbound(policy=OutboundPolicy(allow=("localhost",))).request(
        "GET", f"http://localhost:{server.port}/json"
    )
    assert done.status == 200


async def test_redirect_hops_are_checked(server: LocalServer, refused: LocalServer) -> None:
    out = Outbound(policy=allow_only(server))
    for target in (refused.url("/x"), f"http://0x7f000002:{refused.port}/", "file:///etc/passwd"):
        with pytest.raises(BlockedDestination):
            await out.request("GET", server.url("/redirect"), params={"to": target})
    assert refused.connections == 0
    done = await out.request("GET", server.url("/chain/5"))
    assert done.status == 200 and len(done.redirects) == 5
    with pytest.raises(TooManyRedirects):
        await out.request("GET", server.url("/chain/6"))
    manual = await out.request("GET", server.url("/chain/1"), follow_redirects=False)
    assert manual.status == 301 and manual.redirects == ()


async def test_secrets_are_dropped_on_a_cross_origin_redirect(server: LocalServer) -> None:
    with serving("127.0.0.1") as other:
        policy = allow_only(server)
        await Outbound(policy=policy).request(
            "GET",
            server.url("/redirect"),
            params={"to": other.url("/echo")},
            headers={"Authorization": "Bearer abcdefgh", "X-Api-Key": "k1", "X-Plain": "p"},
        )
        (seen,) = other.requests
    assert "X-Plain" in seen.headers
    assert not {"Authorization", "X-Api-Key"} & set(seen.headers)


async def test_proxy_variables_are_ignored(
    server: LocalServer, refused: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, refused.url())
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    done = await Outbound(policy=allow_only(server)).request("GET", server.url("/json"))
    assert done.status == 200 and refused.connections == 0


async def test_a_configured_proxy_is_used_and_destinations_still_checked(
    server: LocalServer,
) -> None:
    with serving("127.0.0.1") as proxy:
        policy = OutboundPolicy(allow=("127.0.0.1",), proxy=proxy.url())
        done = await Outbound(policy=policy).request("GET", server.url("/json"))
        assert done.status == 200
        assert [r.path for r in proxy.requests] == ["/json"] and server.connections == 0
        with pytest.raises(BlockedDestination):
            await Outbound(policy=policy).request("GET", "http://127.0.0.2:1/")
        assert len(proxy.requests) == 1


async def test_size_is_bounded_while_reading(server: LocalServer) -> None:
    out = Outbound(policy=allow_only(server))
    big = await out.request("GET", server.url("/big"), max_bytes=1000)
    assert (len(big.body), big.truncated) == (1000, True)
    endless = await out.request("GET", server.url("/endless"), max_bytes=100_000)
    assert (len(endless.body), endless.truncated) == (100_000, True)
    bomb = await out.request("GET", server.url("/bomb"), max_bytes=4096)
    assert (bomb.body, bomb.truncated) == (b"\0" * 4096, True)
    small = await out.request("GET", server.url("/gzip-json"))
    assert (small.body, small.truncated) == (b'{"compressed": true}', False)
    exact = await out.request("GET", server.url("/json"), max_bytes=10_000)
    assert not exact.truncated


async def test_time_is_bounded_while_reading(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        await Outbound(policy=allow_only(server)).request("POST", server.url("/drip"), timeout=0.5)
    assert type(info.value).__name__ == "RequestTimeout"
    assert time.monotonic() - started < 2.0


async def test_a_refused_connection_is_retried_even_for_post(server: LocalServer) -> None:
    with serving("127.0.0.1") as gone:
        port = gone.port
    with pytest.raises(Retryable) as info:  # nothing listens: nothing was sent, so retried
        await Outbound(policy=allow_only(server)).request("POST", f"http://127.0.0.1:{port}/")
    assert type(info.value).__name__ == "ConnectionFailed"


async def test_with_a_proxy_a_name_must_resolve_here(server: LocalServer) -> None:
    """The guard fails closed: a name it cannot check is not handed to the proxy."""

    async def nothing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with serving("127.0.0.1") as proxy:
        policy = OutboundPolicy(allow=("127.0.0.1",), proxy=proxy.url(), resolver=nothing)
        with pytest.raises(Retryable) as info:
            await Outbound(policy=policy).request("GET", "http://unknown.test/")
        assert type(info.value).__name__ == "ConnectionFailed"
        assert proxy.connections == 0


async def test_no_redirect_from_https_to_http() -> None:
    """No socket at all: httpx's mock transport answers, the guard decides."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            return httpx.Response(302, headers={"Location": "http://example.com/plain"})
        return httpx.Response(200)

    sent: list[str] = []

    def recording(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return answer(request)

    policy = OutboundPolicy()
    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        request = client.build_request("GET", "https://example.com/")
        with pytest.raises(BlockedDestination, match="from https to http"):
            await send(client, request, policy)
    assert sent == ["https://example.com/"]
