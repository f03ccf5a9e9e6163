"""The tcp type: tcp://HOST:PORT is up when the connect succeeds and, if asked, ``expect`` comes back
(after ``send``) within the deadline. Phases: dns, connect, then processing (send until the first byte)
and transfer (until ``expect`` was read) when there is anything to send or expect."""

from __future__ import annotations

from urllib.parse import urlsplit

from lookout.probes.engine.run import Observation, ProbeError, ProbeRun
from lookout.probes.engine.sockets import DeadlineSocket, connect, os_error_text
from lookout.probes.engine.spec import ProbeSpec
from lookout.probes.engine.targets import UnsafeTarget, host_name_check

TYPE = "tcp"
SCHEMES = ("tcp",)
# The ProbeSpec fields this type reads, besides those every type has (url, timeout, conditions, policy).
SPEC_FIELDS = ("send", "expect", "max_body_bytes", "ip_version")

_READ_CHUNK_BYTES = 16 * 1024


def url_rule(url: str) -> None:
    """Raise ValueError, with a message for the user, unless url is tcp://HOST:PORT."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"Invalid port in {url!r}.") from exc
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError("A tcp monitor's url is tcp://HOST:PORT.")
    host_name_check(parts.hostname)


def target_hosts(url: str) -> list[tuple[str, str]]:
    return [(_address(url)[0], "")]


def probe(spec: ProbeSpec, run: ProbeRun) -> Observation:
    observation = Observation()
    try:
        host, port = _address(spec.url)
        with connect(host, port, run) as sock:
            if spec.send is not None or spec.expect is not None:
                run.clock.enter("processing")
            if spec.send:
                sock.sendall(spec.send)
            if spec.expect is not None:
                received, observation.error = _read_until(sock, spec.expect, spec.max_body_bytes, run)
                observation.body = received.decode("utf-8", errors="replace")
            run.clock.stop()
    except (UnsafeTarget, ProbeError) as exc:
        observation.error = str(exc)
        observation.refused = isinstance(exc, UnsafeTarget)
    except TimeoutError:  # DeadlineExceeded, or a socket timeout, which is set to what was left
        observation.error = run.timeout_text()
    except OSError as exc:
        observation.error = os_error_text(exc) or f"connection failed: {exc}"
    return observation


def _address(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"invalid URL {url!r}: {exc}") from exc
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise UnsafeTarget(f"invalid URL {url!r}: expected tcp://HOST:PORT")
    return parts.hostname, port


def _read_until(sock: DeadlineSocket, expect: bytes, limit: int, run: ProbeRun) -> tuple[bytes, str]:
    """Read until ``expect`` appears, the peer closes, ``limit`` bytes arrived or the deadline passes."""
    received = bytearray()
    while expect not in received:
        if len(received) >= limit:
            return bytes(received), f"expected {_shown(expect)} not found in the first {limit} bytes"
        try:
            chunk = sock.recv(min(_READ_CHUNK_BYTES, limit - len(received)))
        except TimeoutError:
            return bytes(received), (f"{run.timeout_text()} waiting for {_shown(expect)} "
                                     f"(received {len(received)} bytes: {_shown(bytes(received))})")
        if not chunk:
            return bytes(received), (f"connection closed before {_shown(expect)} was received "
                                     f"(received {len(received)} bytes: {_shown(bytes(received))})")
        received += chunk
    return bytes(received), ""


def _shown(data: bytes) -> str:
    return repr(data if len(data) <= 60 else data[:57] + b"...")
