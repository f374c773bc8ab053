"""Loaded at start-up by every Python process whose PYTHONPATH starts with this folder
(the hardening tests put it there): any attempt to reach a host other than this machine's
loopback is logged to $ORGANIZER_NET_LOG and refused. Worker processes started by the
scanner inherit the environment, so they are covered too."""
from __future__ import annotations

import os
import socket

_LOG = os.environ.get("ORGANIZER_NET_LOG", "")
_LOCAL = ("localhost", "127.0.0.1", "::1", "", None)


def _local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return host in _LOCAL or (isinstance(host, str) and (host.startswith("127.") or host == "0.0.0.0"))


def _refuse(what: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(f"pid {os.getpid()}: {what}\n")
    raise PermissionError(f"network access outside 127.0.0.1 is blocked in this test: {what}")


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
_getaddrinfo = socket.getaddrinfo


def _check(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not _local(address[0]):
        _refuse(f"connect {address!r}")


def connect(self, address):  # type: ignore[no-untyped-def]
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):  # type: ignore[no-untyped-def]
    _check(self, address)
    return _connect_ex(self, address)


def sendto(self, data, *args):  # type: ignore[no-untyped-def]
    _check(self, args[-1])
    return _sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if not _local(host):
        _refuse(f"resolve {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
socket.socket.sendto = sendto  # type: ignore[method-assign]
socket.getaddrinfo = getaddrinfo
