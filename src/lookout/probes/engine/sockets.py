"""Connecting to a target: resolve, check the address against the policy, connect; all within the deadline."""

from __future__ import annotations

import socket
from typing import Any

from lookout.probes.engine.resolve import host_addresses
from lookout.probes.engine.run import ProbeRun
from lookout.probes.engine.targets import IPAddress, address_check


class DeadlineSocket(socket.socket):
    """A socket whose every send and receive gets only what is left of the probe's total deadline.

    So a peer that drips one byte a second, in headers, body or TLS records, cannot hold a probe past its
    deadline the way a per-operation timeout would let it. The first bytes received after a request was
    sent end the processing phase (unless TLS sits on top: then the TLS layer marks the first byte of
    decrypted data, which session tickets and other handshake records are not).
    """

    run: ProbeRun
    marks_first_byte: bool = True

    # Arguments pass through untouched: gevent's socket has other signatures than the standard library's
    # (its sendall calls send(data, flags, timeout=...)).
    def recv(self, *args: Any) -> bytes:
        self.settimeout(self.run.deadline.remaining())
        data = super().recv(*args)
        if data and self.marks_first_byte:
            self.run.clock.first_byte()
        return data

    def recv_into(self, *args: Any) -> int:
        self.settimeout(self.run.deadline.remaining())
        count = super().recv_into(*args)
        if count and self.marks_first_byte:
            self.run.clock.first_byte()
        return count

    def send(self, *args: Any, **kwargs: Any) -> int:
        self.settimeout(self.run.deadline.remaining())
        return super().send(*args, **kwargs)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        # With a timeout set, sendall's timeout bounds the whole call, not each chunk.
        self.settimeout(self.run.deadline.remaining())
        super().sendall(*args, **kwargs)


def connect(host: str, port: int, run: ProbeRun, *, what: str = "") -> DeadlineSocket:
    """Resolve ``host`` (dns phase), check the address, connect to it (connect phase).

    Raises LookupFailed, UnsafeTarget (before any packet is sent to the address), DeadlineExceeded or the
    OSError of the failed connect. ``what`` qualifies a refusal ("redirect to").
    """
    run.clock.enter("dns")
    address = host_addresses(host, deadline=run.deadline, ip_version=run.spec.ip_version)[0]
    address_check(address, run.spec.policy, host=host, what=what)
    run.clock.enter("connect")
    sock = DeadlineSocket(socket.AF_INET if address.version == 4 else socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.run = run
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(run.deadline.remaining())
        sock.connect(_sockaddr(address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _sockaddr(address: IPAddress, port: int) -> tuple[Any, ...]:
    scope = getattr(address, "scope_id", None)
    if not scope:
        return (str(address), port)
    # Numeric tuples only: a string with "%scope" would go through getaddrinfo (gevent: its thread pool).
    index = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    return (str(address).split("%", 1)[0], port, 0, index)


def os_error_text(error: BaseException) -> str | None:
    """A short text for a socket-level error, or None if it is not one."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(error, BrokenPipeError):
        return "connection closed by the peer while sending"
    if isinstance(error, OSError) and error.strerror:
        return f"connection failed: {error.strerror.lower()}"
    return None
