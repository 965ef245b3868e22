"""The one guard every URL the service fetches or posts to passes through (media, callbacks, webhooks).

At submission, `check_url` parses a URL, normalises numeric host forms (decimal, octal, hex, short,
IPv6, IPv4-mapped), resolves the host and refuses it if any address is loopback, private, CGNAT,
link-local (cloud metadata included), multicast, unspecified, reserved, unique-local, or an
IPv4-mapped/6to4/NAT64 form of one, unless `DIARIST_URL_ALLOW` names it. At fetch or delivery time,
`guarded_client` gives an httpx client whose every connection (each redirect hop included) is resolved,
checked the same way and made to the checked address, so no DNS answer can change between check and
connect; TLS still verifies the URL's host name (httpcore passes the origin's host as server_hostname to
`start_tls`, whatever address `connect_tcp` reached). `describe_failure` words a failed fetch without
saying what answered, and `check_headers` refuses callback headers that could split or redirect a request.
"""
from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = [
    "Allowlist", "CheckedURL", "FetchRefused", "GuardedBackend", "GuardedTransport", "HeaderRefused",
    "Resolver", "URLInvalid", "URLRefused", "address_allowed", "check_headers", "check_url",
    "describe_failure", "failure_reason", "guarded_client", "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], Iterable[str]]
"""A host name to every address it resolves to (as text); raises OSError when it does not resolve."""

MAX_URL_LENGTH = 8192
MAX_REDIRECTS = 5


class URLInvalid(ValueError):
    """The URL is malformed, or not an http(s) URL with a host and without user information."""


class URLRefused(ValueError):
    """The URL's host is, or resolves to, an address the service does not fetch from or post to."""


class HeaderRefused(ValueError):
    """A caller-chosen header that must not be sent."""


class FetchRefused(httpx.TransportError):
    """At fetch time, a URL or redirect hop refused by the guard (an httpx error, so callers that
    catch httpx.HTTPError treat it as a failed fetch)."""


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Stated here rather than left to ipaddress.is_global, whose tables differ between Python releases.
_REFUSED_V4 = _nets(
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")  # last: reserved + broadcast
_REFUSED_V6 = _nets(
    "::/96",  # unspecified, loopback, IPv4-compatible (deprecated)
    "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8")
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 (64:ff9b::/96) address stands for."""
    if ip in _MAPPED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded(ip)
        if inner is not None:
            return _public(inner)
        refused = _REFUSED_V6
    else:
        refused = _REFUSED_V4
    return not (any(ip in net for net in refused) or ip.is_multicast or ip.is_private
                or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_unspecified)


# --- numeric host forms -------------------------------------------------------------------------

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _ipv4_part(part: str) -> int:
    if not _NUMBER.fullmatch(part) or len(part) > 40:
        raise URLInvalid("invalid IPv4 address")
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        if not set(part) <= set("01234567"):
            raise URLInvalid("invalid IPv4 address")
        return int(part, 8)
    return int(part)


def _ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a host written as IPv4 in any of its numeric forms (as the WHATWG URL standard and
    inet_aton read them: 2130706433, 0177.0.0.1, 0x7f000001, 127.1); None for a host name."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _NUMBER.fullmatch(parts[-1]):
        return None
    if len(parts) > 4:
        raise URLInvalid("invalid IPv4 address")
    numbers = [_ipv4_part(p) for p in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise URLInvalid("invalid IPv4 address")
    return ipaddress.IPv4Address(sum(n << 8 * (3 - i) for i, n in enumerate(numbers[:-1])) + numbers[-1])


def _host(raw: str) -> IPAddress | str:
    """A URL host (as httpx gives it: ASCII, no brackets) as an address, or as a lower-case host
    name without its trailing dot; URLInvalid if it is neither."""
    host = raw.lower()
    if ":" in host:
        if "%" in host:
            raise URLInvalid("an IPv6 zone is not allowed")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise URLInvalid("invalid IPv6 address") from None
    address = _ipv4(host)
    if address is not None:
        return address
    name = host.removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise URLInvalid("invalid host name")
    return name


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


# --- the allowlist ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Allowlist:
    """Addresses and host names that may be used although not public (`DIARIST_URL_ALLOW`)."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls, value: str | None) -> Allowlist:
        """Parses comma-separated CIDRs (a bare address is a /32 or /128) and host names; ValueError
        naming the entry for one that is neither."""
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in (e.strip() for e in (value or "").split(",")):
            if not entry:
                continue
            try:
                if "/" in entry:
                    networks.append(ipaddress.ip_network(entry))
                    continue
                host = _host(entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"DIARIST_URL_ALLOW: {entry!r} is neither a CIDR nor a host name ({exc})") from None
            if isinstance(host, str):
                names.add(host)
            else:
                networks.append(ipaddress.ip_network(host))
        return cls(tuple(networks), frozenset(names))

    def allows_name(self, name: str) -> bool:
        return name in self.names

    def allows_address(self, ip: IPAddress) -> bool:
        inner = _embedded(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        return any(a in net for net in self.networks for a in (ip, inner) if a is not None and a.version == net.version)


def address_allowed(ip: IPAddress, allow: Allowlist) -> bool:
    """Whether the service may connect to this address: public, or in the allowlist."""
    return allow.allows_address(ip) or _public(ip)


# --- submission time ----------------------------------------------------------------------------

def system_resolver(host: str) -> list[str]:
    """Every address the system resolver gives for a host name, in its order, each once."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class CheckedURL:
    url: str  # as given
    scheme: str  # "http" or "https"
    host: str  # a lower-case host name without trailing dot, or the canonical text of an address
    port: int
    addresses: tuple[IPAddress, ...]  # every address the host resolved to, each allowed


def _refused(what: str) -> URLRefused:
    return URLRefused(f"{what} points to an address that is not allowed")


def _localhost(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


def _lookup(resolver: Resolver, name: str) -> tuple[IPAddress, ...]:
    """Every address a host name resolves to, each once; () when it does not resolve."""
    try:
        return tuple(dict.fromkeys(_address(a) for a in resolver(name)))
    except (OSError, UnicodeError, ValueError):
        return ()


def _allowed(host: IPAddress | str, addresses: Iterable[IPAddress], allow: Allowlist) -> bool:
    """Whether a host may be used: a name in the allowlist, else not localhost and every address allowed."""
    if isinstance(host, str) and allow.allows_name(host):
        return True
    if isinstance(host, str) and _localhost(host):
        return False
    return all(address_allowed(a, allow) for a in addresses)


def _refuse_numeric(url: str, what: str) -> None:
    """URLRefused for a URL whose host is a numeric form of a refused address."""
    try:
        host = _host(urlsplit(url).hostname or "")
    except ValueError:
        return
    if not isinstance(host, str) and not _public(host):
        raise _refused(what)


def _parse(url: object, what: str) -> tuple[httpx.URL, IPAddress | str, int]:
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise URLInvalid(f"{what} must be an http or https URL of at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
        urlsplit(url)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        _refuse_numeric(url, what)  # httpx rejects some numeric forms (0177.0.0.1) that others read
        raise URLInvalid(f"{what} is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise URLInvalid(f"{what} must be an http or https URL")
    if not parsed.raw_host:
        raise URLInvalid(f"{what} must have a host")
    if parsed.userinfo or "@" in urlsplit(url).netloc:
        raise URLInvalid(f"{what} must not carry a user name or password")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise URLInvalid(f"{what} has an invalid port")
    try:
        host = _host(parsed.raw_host.decode("ascii"))
    except URLInvalid as exc:
        raise URLInvalid(f"{what} has an invalid host: {exc}") from None
    return parsed, host, port


def check_url(url: str, allow: Allowlist, *, resolver: Resolver = system_resolver,
              what: str = "the URL") -> CheckedURL:
    """Checks a URL at submission (blocking: it resolves the host). URLInvalid if malformed,
    URLRefused if its host is, or resolves to any address, that is not public and not allowed.
    `what` names the URL in the messages (for example "the media_url")."""
    parsed, host, port = _parse(url, what)
    if not _allowed(host, (), allow):
        raise _refused(what)  # localhost, refused before any lookup
    addresses = _lookup(resolver, host) if isinstance(host, str) else (host,)
    if not addresses:
        raise URLRefused(f"{what} has a host name that does not resolve")
    if not _allowed(host, addresses, allow):
        raise _refused(what)
    return CheckedURL(url, parsed.scheme, host if isinstance(host, str) else str(host), port, addresses)


# --- fetch and delivery time --------------------------------------------------------------------

class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves each host once, checks every address, and connects
    to a checked address through the backend it wraps (which therefore only ever sees addresses)."""

    def __init__(self, allow: Allowlist, resolver: Resolver = system_resolver,
                 backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow = allow
        self.resolver = resolver
        self.backend = backend if backend is not None else httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            target = _host(host)
        except URLInvalid:
            raise _refused("the URL") from None
        if not _allowed(target, (), self.allow):
            raise _refused("the URL")
        if isinstance(target, str):
            try:  # the one lookup for this connection: what it answers is checked, then connected to
                addresses = await asyncio.wait_for(asyncio.to_thread(_lookup, self.resolver, target), timeout)
            except TimeoutError:
                raise httpcore.ConnectTimeout("name resolution timed out") from None
            if not addresses:
                raise httpcore.ConnectError("the host name does not resolve")
        else:
            addresses = (target,)
        if not _allowed(target, addresses, self.allow):
            raise _refused("the URL")
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self.backend.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.AsyncNetworkStream:
        raise URLRefused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a GuardedBackend, refusing URLs without a host,
    with user information or not http(s) before any connection. Never behind a proxy."""

    def __init__(self, allow: Allowlist, *, resolver: Resolver = system_resolver,
                 backend: httpcore.AsyncNetworkBackend | None = None, verify: ssl.SSLContext | bool = True,
                 limits: httpx.Limits | None = None) -> None:
        limits = limits if limits is not None else httpx.Limits(max_connections=100, max_keepalive_connections=20)
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx.AsyncHTTPTransport takes no network backend; this is its pool, rebuilt on the guarded one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=GuardedBackend(allow, resolver, backend))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise httpx.UnsupportedProtocol("the URL is not an http or https URL with a host", request=request)
        if url.userinfo:
            raise FetchRefused("the URL carries a user name or password", request=request)
        try:
            return await super().handle_async_request(request)
        except URLRefused:
            raise FetchRefused("the URL points to an address that is not allowed", request=request) from None


def guarded_client(allow: Allowlist, timeout: float | httpx.Timeout, *, follow_redirects: bool = False,
                   max_redirects: int = MAX_REDIRECTS, headers: Mapping[str, str] | None = None,
                   resolver: Resolver = system_resolver, backend: httpcore.AsyncNetworkBackend | None = None,
                   verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """An httpx client whose every connection, each redirect hop included, goes only to a checked
    address (see GuardedBackend); environment proxies are ignored. `backend` is the network backend
    that makes the connections (tests wrap it); refusals raise FetchRefused."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow, resolver=resolver, backend=backend, verify=verify), timeout=timeout,
        follow_redirects=follow_redirects, max_redirects=max_redirects, headers=headers, trust_env=False)


def failure_reason(failure: BaseException | int) -> str:
    """Why a fetch or delivery failed, in a few words that say nothing about what answered (no server
    banners, no connection details): an exception from a guarded client, or an unwanted HTTP status."""
    if isinstance(failure, (FetchRefused, URLRefused)):
        return "the address is not allowed"
    if isinstance(failure, int):
        return f"HTTP status {failure}"
    if isinstance(failure, httpx.HTTPStatusError):
        return f"HTTP status {failure.response.status_code}"
    if isinstance(failure, httpx.TooManyRedirects):
        return "too many redirects"
    if isinstance(failure, httpx.TimeoutException):
        return "timed out"
    if isinstance(failure, (httpx.UnsupportedProtocol, httpx.InvalidURL, URLInvalid)):
        return "not an http or https URL"
    return "connection failed"


def describe_failure(failure: BaseException | int, what: str = "the URL") -> str:
    """Why a fetch failed, as a sentence about `what` (see failure_reason)."""
    if isinstance(failure, (FetchRefused, URLRefused)):
        return f"{what} points to an address that is not allowed"
    return f"{what} could not be fetched: {failure_reason(failure)}"


# --- callback headers ---------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")
_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive",
                         "te", "trailer", "trailers", "upgrade"})


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuses (HeaderRefused) caller-chosen headers that are not a token name with a printable ASCII
    value (so no CR, LF or NUL), or that are Host, Content-Length or hop-by-hop headers."""
    if not isinstance(headers, Mapping):
        raise HeaderRefused("headers must be an object of names to values")
    for name, value in typing.cast(Mapping[object, object], headers).items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise HeaderRefused(f"header name {str(name)[:64]!r} is not a valid header name")
        if name.lower() in _HOP_BY_HOP or name.lower().startswith("proxy-"):
            raise HeaderRefused(f"header {name!r} may not be set")
        if not isinstance(value, str) or not _VALUE.fullmatch(value):
            raise HeaderRefused(f"header {name!r} must have a printable ASCII text value (no CR, LF or NUL)")
