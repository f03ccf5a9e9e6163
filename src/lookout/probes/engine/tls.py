"""TLS for probes: the handshake within the deadline, and the facts of the peer's certificate.

The TLS layer is urllib3's SSLTransport (an ssl.SSLObject over memory buffers), not ssl.SSLSocket: every
byte then goes through our DeadlineSocket, so the handshake and every record read share the probe's total
deadline, with or without gevent (gevent's SSLSocket re-arms a full timeout at each wait).

Facts come from ``getpeercert(binary_form=True)`` parsed with cryptography, so they exist also when
verification is off (the dict form is then empty). When verification fails, the handshake is aborted
before Python can show the certificate, so the engine makes a second, unverified handshake to the same
address, only to read the facts; the probe still fails with the verification error.
"""

from __future__ import annotations

import functools
import hashlib
import re
import socket
import ssl
from datetime import UTC, datetime
from typing import Any

import certifi
from cryptography import x509
from urllib3.util.ssltransport import SSLTransport

from lookout.probes.engine.run import ProbeError, ProbeRun
from lookout.probes.engine.sockets import DeadlineSocket
from lookout.probes.engine.spec import TlsFacts


class TlsTransport(SSLTransport):
    """SSLTransport that marks the first byte of decrypted response data on the probe's phase clock."""

    socket: DeadlineSocket

    def __init__(self, sock: DeadlineSocket, context: ssl.SSLContext, server_hostname: str) -> None:
        sock.marks_first_byte = False  # handshake records and session tickets are not the response
        super().__init__(sock, context, server_hostname=server_hostname)

    def _wrap_ssl_read(self, len: int, buffer: bytearray | None = None) -> int | bytes:  # "len": as in the base
        result = super()._wrap_ssl_read(len, buffer)
        if result:
            self.socket.run.clock.first_byte()
        return result


@functools.lru_cache(maxsize=32)
def tls_context(verify: bool, ca_pem: str | None = None) -> ssl.SSLContext:
    """One shared context per trust setting: loading a CA bundle costs milliseconds of CPU, a context none."""
    try:
        if verify:
            context = ssl.create_default_context(cafile=None if ca_pem else certifi.where(), cadata=ca_pem)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    except (ssl.SSLError, ValueError) as exc:
        raise ProbeError(f"invalid CA certificates: {ssl_reason(exc)}") from exc
    context.set_alpn_protocols(["http/1.1"])
    return context


def tls_connect(sock: DeadlineSocket, host: str, run: ProbeRun) -> TlsTransport:
    """Handshake over a connected socket (tls phase); records the certificate's facts on ``run``."""
    run.clock.enter("tls")
    spec = run.spec
    context = tls_context(spec.verify_tls, spec.ca_pem)
    try:
        transport = TlsTransport(sock, context, server_hostname=host)
    except ssl.SSLCertVerificationError:
        run.tls = _unverified_facts(sock, host, run)
        raise
    run.tls = _facts(transport, verified=spec.verify_tls)
    return transport


def tls_facts(der: bytes, *, version: str, verified: bool, now: datetime | None = None) -> TlsFacts:
    """Facts of a DER certificate; raises ValueError if it cannot be parsed."""
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    now = now or datetime.now(UTC)
    return TlsFacts(
        not_after=not_after, not_before=cert.not_valid_before_utc,
        issuer=cert.issuer.rfc4514_string(), subject=cert.subject.rfc4514_string(),
        days_left=(not_after - now).total_seconds() / 86400, version=version, verified=verified,
    )


def tls_facts_json(facts: TlsFacts) -> dict[str, Any]:
    """The facts as stored with a result and sent back by a region's prober."""
    return {"not_after": facts.not_after.isoformat(), "not_before": facts.not_before.isoformat(),
            "issuer": facts.issuer, "subject": facts.subject, "days_left": round(facts.days_left, 2),
            "version": facts.version, "verified": facts.verified}


def tls_fingerprint(facts: TlsFacts) -> str:
    """Identifies one certificate (a renewal changes it), so an expiry warning goes out once per certificate."""
    identity = f"{facts.subject}|{facts.issuer}|{facts.not_before.isoformat()}|{facts.not_after.isoformat()}"
    return hashlib.sha256(identity.encode()).hexdigest()


def ssl_error_text(error: ssl.SSLError, facts: TlsFacts | None) -> str:
    text = f"SSL error: {ssl_reason(error)}"
    if isinstance(error, ssl.SSLCertVerificationError) and facts is not None:
        if facts.days_left < 0:
            text += f" (expired {facts.not_after:%Y-%m-%d %H:%M} UTC)"
        elif facts.not_before > datetime.now(UTC):
            text += f" (not valid before {facts.not_before:%Y-%m-%d %H:%M} UTC)"
    return text


def ssl_reason(error: BaseException) -> str:
    # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)"
    # -> "certificate verify failed: self-signed certificate"
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error))
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text) or type(error).__name__


def _facts(transport: SSLTransport, *, verified: bool) -> TlsFacts | None:
    der = transport.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return tls_facts(der, version=transport.version() or "", verified=verified)
    except ValueError:  # a certificate cryptography cannot parse: the probe goes on without facts
        return None


def _unverified_facts(failed: DeadlineSocket, host: str, run: ProbeRun) -> TlsFacts | None:
    try:
        peer = failed.getpeername()
        sock = DeadlineSocket(failed.family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.run = run
        sock.settimeout(run.deadline.remaining())
        sock.connect(peer)
        transport = TlsTransport(sock, tls_context(False), server_hostname=host)
        return _facts(transport, verified=False)
    except (OSError, ssl.SSLError, ValueError):  # DeadlineExceeded included: the original error stands
        return None
    finally:
        sock.close()
