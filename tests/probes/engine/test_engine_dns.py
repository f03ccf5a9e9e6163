"""The dns type, against a DNS server (dnslib) the test starts on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest

from lookout.probes.engine import ProbeSpec, TargetPolicy, probe

HOW = ("internal targets are refused unless the operator allows them "
       "(LOOKOUT_ALLOW_PRIVATE_TARGETS, LOOKOUT_TARGET_ALLOWLIST)")
# The test resolver listens on loopback; allowing exactly it leaves the answers under the default rules.
RESOLVER_ONLY = TargetPolicy(allowlist=(ipaddress.ip_network("127.0.0.1/32"),))


def dns_spec(server, name: str, record_type: str = "A", **options) -> ProbeSpec:
    return ProbeSpec(f"dns://{server.address}/{name}", type="dns", record_type=record_type,
                     policy=options.pop("policy", RESOLVER_ONLY), timeout=options.pop("timeout", 5), **options)


@pytest.mark.parametrize(("name", "record_type", "answer"), [
    ("public.lookout.test", "A", "93.184.216.34"),
    ("public.lookout.test", "AAAA", "2606:2800:220:1:248:1893:25c8:1946"),
    ("alias.lookout.test", "CNAME", "public.lookout.test"),
    ("alias.lookout.test", "A", "93.184.216.34"),  # through the CNAME
    ("lookout.test", "MX", "10 mx1.lookout.test, 20 mx2.lookout.test"),
    ("lookout.test", "TXT", "v=spf1 -all"),
    ("lookout.test", "NS", "ns1.lookout.test, ns2.lookout.test"),
])
def test_each_record_type_is_answered(dns_server, name: str, record_type: str, answer: str) -> None:
    outcome = probe(dns_spec(dns_server, name, record_type))

    assert outcome.success is True, outcome.error
    assert outcome.answer == answer
    assert outcome.status_code is None
    assert (name, record_type) in dns_server.queries


@pytest.mark.parametrize(("name", "record_type", "expected"), [
    ("public.lookout.test", "A", "93.184.216.34"),
    ("public.lookout.test", "AAAA", "2606:2800:0220:0001:0248:1893:25c8:1946"),  # another spelling, same address
    ("alias.lookout.test", "CNAME", "PUBLIC.lookout.test."),
    ("lookout.test", "MX", "mx2.lookout.test"),
    ("lookout.test", "MX", "20 mx2.lookout.test"),
    ("lookout.test", "TXT", "v=spf1 -all"),
    ("lookout.test", "NS", "ns2.lookout.test"),
])
def test_an_expected_answer_among_the_answers_is_a_success(dns_server, name, record_type, expected) -> None:
    outcome = probe(dns_spec(dns_server, name, record_type, expected_answer=expected))

    assert outcome.success is True, outcome.error


def test_an_expected_answer_missing_from_the_answers_is_a_failure_that_keeps_the_answers(dns_server) -> None:
    outcome = probe(dns_spec(dns_server, "lookout.test", "MX", expected_answer="mx3.lookout.test"))

    assert outcome.success is False
    assert outcome.error == "expected answer 'mx3.lookout.test' is not among the answers"
    assert outcome.answer == "10 mx1.lookout.test, 20 mx2.lookout.test"


def test_a_name_that_does_not_exist_is_a_failure(dns_server) -> None:
    outcome = probe(dns_spec(dns_server, "nope.lookout.test"))

    assert outcome.error == "nope.lookout.test does not exist (NXDOMAIN)"


def test_a_name_without_records_of_the_type_is_a_failure(dns_server) -> None:
    outcome = probe(dns_spec(dns_server, "public.lookout.test", "MX"))

    assert outcome.error == "no MX records for public.lookout.test"


def test_a_failing_resolver_is_a_failure(dns_server) -> None:
    outcome = probe(dns_spec(dns_server, "broken.lookout.test"))

    assert outcome.error == "the resolver could not answer for broken.lookout.test (SERVFAIL)"


def test_an_answer_with_an_internal_address_is_refused_and_not_shown(dns_server) -> None:
    outcome = probe(dns_spec(dns_server, "internal.lookout.test"))

    assert outcome.success is False
    assert outcome.error == f"internal.lookout.test resolves to a private address (RFC 1918); {HOW}"
    assert outcome.answer is None


def test_with_private_targets_allowed_an_internal_answer_is_fine(dns_server) -> None:
    outcome = probe(dns_spec(dns_server, "internal.lookout.test", policy=TargetPolicy(allow_private=True),
                             expected_answer="10.1.2.3"))

    assert outcome.success is True, outcome.error
    assert outcome.answer == "10.1.2.3"


def test_the_system_resolver_form_asks_the_configured_resolver(local_names) -> None:
    outcome = probe(ProbeSpec("dns:///public.lookout.test", type="dns", record_type="AAAA", timeout=5))

    assert outcome.success is True, outcome.error
    assert outcome.answer == "2606:2800:220:1:248:1893:25c8:1946"


def test_a_resolver_given_by_name_is_resolved_and_checked(local_names) -> None:
    port = local_names.address.rsplit(":", 1)[1]

    outcome = probe(ProbeSpec(f"dns://app.lookout.test:{port}/lookout.test", type="dns", record_type="TXT",
                              policy=RESOLVER_ONLY, timeout=5))
    refused = probe(ProbeSpec(f"dns://app.lookout.test:{port}/lookout.test", type="dns", timeout=5))

    assert outcome.success is True, outcome.error
    assert refused.error == f"resolver app.lookout.test resolves to a loopback address; {HOW}"


def test_a_resolver_that_never_answers_fails_at_the_deadline() -> None:
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    try:
        start = time.perf_counter()
        outcome = probe(ProbeSpec(f"dns://127.0.0.1:{mute.getsockname()[1]}/public.lookout.test", type="dns",
                                  policy=RESOLVER_ONLY, timeout=1.0))
        elapsed = time.perf_counter() - start
    finally:
        mute.close()

    assert outcome.error == "timed out after 1.0s"
    assert 0.9 <= elapsed < 1.3


def test_conditions_see_the_answers_as_the_body(dns_server) -> None:
    holds = probe(dns_spec(dns_server, "lookout.test", "MX", conditions=('[BODY] contains "mx1"',
                                                                         "[RESPONSE_TIME] < 5s")))
    fails = probe(dns_spec(dns_server, "lookout.test", "MX", conditions=('[BODY] !contains "mx2"',)))

    assert holds.success is True, holds.error
    assert fails.failed_condition == '[BODY] !contains "mx2"'


@pytest.mark.parametrize(("url", "record_type", "error"), [
    ("dns://{server}/lookout.test", "SOA", "unsupported record type 'SOA' (one of A, AAAA, CNAME, MX, TXT, NS)"),
    ("dns://{server}/", "A", "invalid URL 'dns://{server}/': expected dns://RESOLVER/NAME or dns:///NAME"),
    ("dns://{server}/a..b", "A", "invalid DNS name 'a..b': A DNS label is empty."),
])
def test_bad_dns_specs_are_failures_not_exceptions(dns_server, url, record_type, error) -> None:
    url = url.format(server=dns_server.address)

    outcome = probe(ProbeSpec(url, type="dns", record_type=record_type, policy=RESOLVER_ONLY, timeout=2))

    assert outcome.error == error.format(server=dns_server.address)
