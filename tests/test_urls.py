"""The URL guard: refusals through a fake resolver, and real fetches from loopback servers only.

No test here may send a packet outside 127.0.0.0/8 or ::1, even if the guard were broken: names are
resolved by FAKE_DNS (never the system resolver), every connection goes through LoopbackOnly, and the
autouse `_no_network` fence fails the test on any system DNS lookup or any socket connect elsewhere.
"""
from __future__ import annotations

import http.server
import ipaddress
import socket
import socketserver
import threading
from collections.abc import Iterable, Iterator
from typing import ClassVar

import httpcore
import httpx
import pytest

from diarist.streams.urls import (
    Allowlist,
    FetchRefused,
    HeaderRefused,
    URLInvalid,
    URLRefused,
    check_headers,
    check_url,
    describe_failure,
    guarded_client,
)

pytestmark = pytest.mark.unit

FAKE_DNS: dict[str, list[str]] = {
    "media.example": ["93.184.216.34"],
    "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "xn--n-nga1b.example": ["93.184.216.34"],  # ünï.example
    "media.test": ["127.0.0.1"],
    "store.internal": ["10.0.0.5"],
    "other.internal": ["10.0.0.5"],
    "internal.test": ["10.0.0.7"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],
    "half-allowed.test": ["10.0.0.5", "127.0.0.1"],
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "ula.test": ["fd00::1"],
    "localhost": ["127.0.0.1"],
    "foo.localhost": ["127.0.0.1"],
}


def fake_resolver(name: str) -> list[str]:
    if name not in FAKE_DNS:
        raise socket.gaierror(socket.EAI_NONAME, "not in FAKE_DNS")
    return FAKE_DNS[name]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if anything asks the system for a name, or connects anywhere but loopback."""
    getaddrinfo, connect, connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if not _loopback(host.decode() if isinstance(host, bytes) else str(host)):
            pytest.fail(f"a system DNS lookup of {host!r} was attempted")
        return getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    def fence(original):  # type: ignore[no-untyped-def]
        def guarded(self: socket.socket, address: object) -> object:
            if not (isinstance(address, tuple) and _loopback(str(address[0]))):
                pytest.fail(f"a connection to {address!r} was attempted")
            return original(self, address)
        return guarded

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", fence(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", fence(connect_ex))


# --- submission time: every form refused, through the fake resolver ----------------------------

@pytest.mark.parametrize("url", [
    "ftp://media.example/a.wav", "file:///etc/passwd", "javascript:alert(1)", "media.example/a.wav",
    "//media.example/a.wav", "http:/x", "http://", "http:///a", "http://:80/",
    "http://user@media.example/", "http://user:pw@media.example/", "http://@media.example/",
    "http://media.example\\@127.0.0.1/", "http://a@/",
    "http://media.example:99999/", "http://media.example:0/", "http://media.example:-1/",
    "http://%31%32%37.0.0.1/", "http://exa mple.com/", "http://a..b/", "http://-a.example/",
    "http://1.2.3.999/", "http://256.0.0.1/", "http://1.2.3.4.5/", "http://0x100000000/", "http://089.0.0.1/",
    "http://foo.0x1/", "http://[fe80::1%25eth0]/", "http://[zz]/", "http://\ud800/", "http://" + "a" * 9000,
    42, None,
])
def test_malformed_urls_are_invalid(url: str) -> None:
    with pytest.raises(URLInvalid):
        check_url(url, Allowlist(), resolver=fake_resolver)


REFUSED = [
    # loopback in every numeric form
    "http://127.0.0.1/", "http://127.0.0.1:8000/openapi.json", "http://127.255.255.254/", "http://2130706433/",
    "http://0177.0.0.1/", "http://0x7f000001/", "http://0x7F.0.0.1/", "http://0x7f.1/", "http://127.1/",
    "http://127.0.1/", "http://017700000001/", "http://127.0.0.1./", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/",
    # localhost and names resolving to refused addresses
    "http://localhost/", "http://LOCALHOST./", "http://foo.localhost/", "http://v6loop.test/",
    "http://mixed.test/", "http://internal.test/", "http://metadata.test/", "http://mapped.test/",
    "http://ula.test/",
    # unspecified, private, CGNAT, link-local and cloud metadata
    "http://0.0.0.0/", "http://0/", "http://[::]/", "http://10.1.2.3/", "http://172.16.0.1/",
    "http://172.31.255.255/", "http://192.168.1.1/", "http://100.64.0.1/", "http://100.127.255.254/",
    "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://0xa9.0xfe.0xa9.0xfe/",
    "http://[fe80::1]/", "http://[fd00:ec2::254]/", "http://[fc00::1]/", "http://[fec0::1]/",
    # multicast, broadcast, reserved, documentation, protocol assignments
    "http://224.0.0.1/", "http://239.255.255.250/", "http://[ff02::1]/", "http://255.255.255.255/",
    "http://240.0.0.1/", "http://192.0.0.8/", "http://192.0.2.1/", "http://198.18.0.1/",
    "http://[2001:db8::1]/", "http://[2001::1]/", "http://[100::1]/",
    # IPv4 embedded in IPv6: mapped, 6to4, NAT64
    "http://[::ffff:10.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b:1::1]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(URLRefused) as refused:
        check_url(url, Allowlist(), resolver=fake_resolver, what="the media_url")
    assert str(refused.value) == "the media_url points to an address that is not allowed"


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(URLRefused, match="does not resolve"):
        check_url("http://nowhere.test/", Allowlist(), resolver=fake_resolver)


@pytest.mark.parametrize(("url", "host", "port", "addresses"), [
    ("http://media.example/a.wav", "media.example", 80, ["93.184.216.34"]),
    ("https://MEDIA.example.:8443/a?b#c", "media.example", 8443, ["93.184.216.34"]),
    ("https://v6.example/", "v6.example", 443, ["2606:2800:220:1:248:1893:25c8:1946"]),
    ("http://ünï.example/", "xn--n-nga1b.example", 80, ["93.184.216.34"]),
    ("http://8.8.8.8/", "8.8.8.8", 80, ["8.8.8.8"]),
    ("http://134744072/", "8.8.8.8", 80, ["8.8.8.8"]),
    ("http://[2606:4700::1111]:81/", "2606:4700::1111", 81, ["2606:4700::1111"]),
    ("http://[::ffff:8.8.8.8]/", "::ffff:808:808", 80, ["::ffff:8.8.8.8"]),
])
def test_public_urls_pass(url: str, host: str, port: int, addresses: list[str]) -> None:
    checked = check_url(url, Allowlist(), resolver=fake_resolver)
    assert (checked.url, checked.host, checked.port) == (url, host, port)
    assert checked.addresses == tuple(ipaddress.ip_address(a) for a in addresses)


def test_the_allowlist_admits_its_networks_and_names_only() -> None:
    allow = Allowlist.from_env(" 10.0.0.0/8, store.internal ,127.0.0.1, [::1], fd00::/8,, ")
    assert allow.names == frozenset({"store.internal"})
    assert [str(n) for n in allow.networks] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"]
    for url in ("http://10.1.2.3/", "http://127.0.0.1:8000/", "http://2130706433/", "http://[::1]/",
                "http://[::ffff:127.0.0.1]/", "http://ula.test/", "http://store.internal/", "http://other.internal/"):
        check_url(url, allow, resolver=fake_resolver)
    for url in ("http://127.0.0.2/", "http://192.168.1.1/", "http://169.254.169.254/", "http://localhost/"):
        with pytest.raises(URLRefused):
            check_url(url, allow, resolver=fake_resolver)

    by_name = Allowlist.from_env("store.internal")
    check_url("http://STORE.internal./", by_name, resolver=fake_resolver)
    with pytest.raises(URLRefused):  # the same address under another name
        check_url("http://other.internal/", by_name, resolver=fake_resolver)
    with pytest.raises(URLRefused):  # every address must be allowed
        check_url("http://half-allowed.test/", Allowlist.from_env("10.0.0.0/8"), resolver=fake_resolver)
    check_url("http://localhost:9/", Allowlist.from_env("localhost"), resolver=fake_resolver)
    assert Allowlist.from_env("") == Allowlist.from_env(None) == Allowlist.from_env(" , ") == Allowlist()


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "10.0.0.1/8", "not a host!", "http://x", "1.2.3.999",
                                   "*.example", "fd00::/200", "[::1"])
def test_a_bad_allowlist_entry_is_named_at_startup(entry: str) -> None:
    with pytest.raises(ValueError, match=r"DIARIST_URL_ALLOW: .* is neither a CIDR nor a host name"):
        Allowlist.from_env(f"10.0.0.0/8,{entry}")


# --- callback headers --------------------------------------------------------------------------

def test_ordinary_headers_pass() -> None:
    check_headers({"Authorization": "Bearer abc.def", "X-Trace": "a\tb c", "X-Empty": ""})


@pytest.mark.parametrize("headers", [
    {"Host": "x"}, {"host": "x"}, {"Content-Length": "1"}, {"Transfer-Encoding": "chunked"},
    {"Connection": "close"}, {"Keep-Alive": "5"}, {"Proxy-Authorization": "x"}, {"proxy-connection": "x"},
    {"TE": "trailers"}, {"Trailer": "x"}, {"Upgrade": "h2c"},
    {"X-A": "a\r\nHost: b"}, {"X-A": "a\nb"}, {"X-A": "a\rb"}, {"X-A": "a\x00"}, {"X-A": "é"},
    {"X-A\r\n": "v"}, {"Bad Name": "v"}, {"": "v"}, {"X-A:": "v"}, {"X-A": 1}, {1: "v"},
])
def test_dangerous_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(HeaderRefused):
        check_headers(headers)


# --- fetch time: real loopback servers, every connection through LoopbackOnly -------------------

class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """The backend that makes the connections: records each, fails the test for anything not loopback
    (an unresolved name included: the guard must hand over only checked addresses)."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connections: list[tuple[str, int]] = []
        self.server_hostnames: list[str | None] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.AsyncNetworkStream:
        if not _loopback(host):
            pytest.fail(f"the guard let a connection to {host!r} through")
        self.connections.append((host, port))
        return _TLSRecorder(await self.inner.connect_tcp(host, port, timeout, local_address, socket_options), self)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _TLSRecorder(httpcore.AsyncNetworkStream):
    """A stream that records the server_hostname TLS would verify, and stops there (plain servers)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, backend: LoopbackOnly) -> None:
        self.stream, self.backend = stream, backend

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def start_tls(self, ssl_context: object, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        self.backend.server_hostnames.append(server_hostname)
        raise httpcore.ConnectError("no TLS on the test servers")

    def get_extra_info(self, info: str) -> object:
        return self.stream.get_extra_info(info)


class _Server(http.server.ThreadingHTTPServer):
    def server_bind(self) -> None:  # HTTPServer's own looks its name up (getfqdn): not here
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hosts.append(self.headers["Host"])
        port = self.server.server_address[1]
        redirects = {"/to-internal": f"http://internal.test:{port}/media", "/to-self": "/media",
                     "/to-metadata": "http://169.254.169.254/latest/meta-data/", "/loop": "/loop",
                     "/to-userinfo": f"http://user@127.0.0.1:{port}/media",
                     "/to-localhost": f"http://localhost:{port}/media",
                     "/to-numeric": f"http://2130706433:{port}/media"}
        if self.path == "/media":
            self._answer(200, b"media-bytes")
        elif self.path == "/banner":
            self.close_connection = True  # "Server disconnected without sending a response"
        elif self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer(404, b"nginx/1.2.3 internal admin")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


LOOPBACK = Allowlist.from_env("127.0.0.1/32")


async def test_a_fetch_from_an_allowed_loopback_server(server: int) -> None:
    backend = LoopbackOnly()
    async with guarded_client(LOOPBACK, 5, resolver=fake_resolver, backend=backend) as client:
        response = await client.get(f"http://127.0.0.1:{server}/media")
    assert (response.status_code, response.content) == (200, b"media-bytes")
    assert backend.connections == [("127.0.0.1", server)]


async def test_the_connection_goes_to_the_address_checked_with_one_lookup(server: int) -> None:
    lookups: list[str] = []

    def rebinding(name: str) -> list[str]:  # first answer allowed, any later one would not be
        lookups.append(name)
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.0.0.7"]

    backend, _Handler.hosts = LoopbackOnly(), []
    async with guarded_client(LOOPBACK, 5, resolver=rebinding, backend=backend) as client:
        response = await client.get(f"http://media.test:{server}/media")
    assert response.content == b"media-bytes"
    assert lookups == ["media.test"]
    assert backend.connections == [("127.0.0.1", server)]  # an address, never the name
    assert _Handler.hosts == [f"media.test:{server}"]  # the Host header keeps the name


async def test_tls_verifies_the_host_name_not_the_pinned_address(server: int) -> None:
    backend = LoopbackOnly()
    async with guarded_client(LOOPBACK, 5, resolver=fake_resolver, backend=backend) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"https://media.test:{server}/media")
    assert backend.connections == [("127.0.0.1", server)]
    assert backend.server_hostnames == ["media.test"]


async def test_redirects_within_the_allowlist_are_followed(server: int) -> None:
    backend = LoopbackOnly()
    async with guarded_client(LOOPBACK, 5, follow_redirects=True, resolver=fake_resolver, backend=backend) as client:
        for path in ("/to-self", "/to-numeric"):
            response = await client.get(f"http://127.0.0.1:{server}{path}")
            assert response.content == b"media-bytes"
    assert {host for host, _ in backend.connections} == {"127.0.0.1"}


@pytest.mark.parametrize("path", ["/to-internal", "/to-metadata", "/to-userinfo", "/to-localhost"])
async def test_a_redirect_hop_to_a_refused_address_is_refused_before_connecting(server: int, path: str) -> None:
    backend = LoopbackOnly()
    async with guarded_client(LOOPBACK, 5, follow_redirects=True, resolver=fake_resolver, backend=backend) as client:
        with pytest.raises(FetchRefused) as refused:
            await client.get(f"http://127.0.0.1:{server}{path}")
    assert backend.connections == [("127.0.0.1", server)]  # the first hop only
    text = describe_failure(refused.value, "the media_url")
    assert text == "the media_url points to an address that is not allowed"


@pytest.mark.parametrize("url", [
    "http://internal.test/", "http://metadata.test/", "http://169.254.169.254/", "http://[::ffff:a9fe:a9fe]/",
    "http://10.0.0.7:{port}/media", "http://127.0.0.2:{port}/media", "http://localhost:{port}/media",
    "http://[::1]:{port}/media", "http://user@127.0.0.1:{port}/media", "http://half-allowed.test:{port}/media",
])
async def test_the_client_refuses_what_the_check_refuses(server: int, url: str) -> None:
    backend = LoopbackOnly()
    async with guarded_client(LOOPBACK, 5, resolver=fake_resolver, backend=backend) as client:
        with pytest.raises(FetchRefused):
            await client.post(url.format(port=server), content=b"{}")
    assert backend.connections == []


async def test_environment_proxies_are_ignored(server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # loopback, so a broken guard still sends nothing out
    backend = LoopbackOnly()
    async with guarded_client(LOOPBACK, 5, resolver=fake_resolver, backend=backend) as client:
        assert (await client.get(f"http://127.0.0.1:{server}/media")).content == b"media-bytes"
    assert backend.connections == [("127.0.0.1", server)]


async def test_failures_say_only_that_the_fetch_failed(server: int) -> None:
    backend = LoopbackOnly()
    async with guarded_client(LOOPBACK, 5, follow_redirects=True, max_redirects=3, resolver=fake_resolver,
                              backend=backend) as client:
        with pytest.raises(httpx.RemoteProtocolError) as disconnected:
            await client.get(f"http://127.0.0.1:{server}/banner")
        with pytest.raises(httpx.TooManyRedirects) as looping:
            await client.get(f"http://127.0.0.1:{server}/loop")
        with pytest.raises(httpx.ConnectError) as unresolved:
            await client.get("http://nowhere.test/")
        missing = await client.get(f"http://127.0.0.1:{server}/admin")
    assert "disconnected" in str(disconnected.value)  # what httpx would have said
    assert describe_failure(disconnected.value, "the media_url") == "the media_url could not be fetched: connection failed"
    assert describe_failure(unresolved.value) == "the URL could not be fetched: connection failed"
    assert describe_failure(looping.value) == "the URL could not be fetched: too many redirects"
    assert describe_failure(missing.status_code) == "the URL could not be fetched: HTTP status 404"
    with pytest.raises(httpx.HTTPStatusError) as status:
        missing.raise_for_status()
    assert describe_failure(status.value) == "the URL could not be fetched: HTTP status 404"
    assert describe_failure(httpx.ReadTimeout("x")) == "the URL could not be fetched: timed out"
