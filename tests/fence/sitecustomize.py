"""A network fence for the tests: no name lookup and no connection beyond loopback.

In a test's own process, `install(refused, monkeypatch.setattr)` makes every lookup of a name that is
not a loopback address or `localhost`, and every TCP connection to an address outside 127.0.0.0/8
and ::1, call `refused(what)` (which fails the test) and raise OSError instead. The service
processes that tests start get it with PYTHONPATH=<this folder> (tests/service.py `fenced`):
Python imports this module at startup as `sitecustomize`, and with DIARIST_TEST_FENCE_LOG set it
installs the fence, writing one line per refusal to that file. So even a broken URL guard cannot
send a packet past loopback: a refused lookup never reaches a resolver, a refused connect never
leaves the socket.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

ALLOWED_NAMES = frozenset({"localhost", "", "0.0.0.0", "::"})  # "": any interface, for binding


def loopback(host: object) -> bool:
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def install(refused: Callable[[str], None], patch: Callable[[Any, str, Any], None] = setattr) -> None:
    getaddrinfo, connect, connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def fenced_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if host is not None and name not in ALLOWED_NAMES and not loopback(name):
            refused(f"lookup {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, "refused by the tests' network fence")
        return getaddrinfo(host, *args, **kwargs)

    def fence(original: Callable[..., Any]) -> Callable[..., Any]:
        def fenced(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6) and not loopback(address[0]):
                refused(f"connect {address!r}")
                raise OSError(errno.ENETUNREACH, "refused by the tests' network fence")
            return original(self, address)
        return fenced

    patch(socket, "getaddrinfo", fenced_getaddrinfo)
    patch(socket.socket, "connect", fence(connect))
    patch(socket.socket, "connect_ex", fence(connect_ex))


def _log_to(path: str) -> Callable[[str], None]:
    def refused(what: str) -> None:
        with open(path, "a") as log:
            log.write(f"{os.getpid()} {what}\n")
    return refused


if os.environ.get("DIARIST_TEST_FENCE_LOG"):
    install(_log_to(os.environ["DIARIST_TEST_FENCE_LOG"]))
