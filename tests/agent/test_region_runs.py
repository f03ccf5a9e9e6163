"""The RUN and RESULT messages: a spec survives the trip as JSON, its secrets travel sealed only."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from lookout.agent.keys import region_key_derive, secrets_seal
from lookout.agent.runs import SPEC_FIELDS, RunInvalid, result_json, run_spec, spec_json
from lookout.probes.engine import Outcome, ProbeSpec, TargetPolicy, TlsFacts, region_user_agent
from lookout.probes.engine.tls import tls_facts_json, tls_fingerprint

KEY = region_key_derive("material-" + "m" * 30, "eu-west")
POLICY = TargetPolicy(allow_private=True)


def run_of(spec: ProbeSpec, *, sealed: str = "", **fields) -> dict:
    return {"monitor": 7, "region": "eu-west", "due": 1700000000.0, "expires": 1700000060.0, "task_id": "t-1",
            "spec": spec_json(spec), "sealed": sealed, "token": "tok", "recheck": False, **fields}


def test_a_spec_comes_back_as_it_went_with_the_prober_s_policy_and_user_agent():
    spec = ProbeSpec("https://example.com/health", method="POST", body=b'{"a": 1}', headers={"Accept": "x/y"},
                     expected_status=(200, 204), keyword="ok", conditions=("[STATUS] == 200",), timeout=7.5,
                     ip_version=4, verify_tls=False, max_redirects=2)

    # Through JSON, as on the wire.
    back = run_spec(json.loads(json.dumps(run_of(spec))), key=KEY, policy=POLICY,
                    user_agent=region_user_agent("eu-west"))

    assert back == ProbeSpec(**{**spec.__dict__, "policy": POLICY, "user_agent": region_user_agent("eu-west")})


def test_a_tcp_spec_s_bytes_travel_as_text():
    spec = ProbeSpec("tcp://example.com:25", type="tcp", send=b"EHLO lookout\r\n", expect=b"250")

    public = spec_json(spec)

    assert (public["send"], public["expect"], public["body"]) == ("EHLO lookout\r\n", "250", None)
    assert run_spec(run_of(spec), key=KEY, policy=POLICY, user_agent="ua").send == b"EHLO lookout\r\n"


def test_the_run_carries_public_fields_only_and_its_secrets_sealed():
    spec = ProbeSpec("https://example.com/", headers={"Accept": "text/plain"})
    sealed = secrets_seal(KEY, {"Authorization": "Bearer s3cret-token"}, ("alice", "pa55word"))

    text = json.dumps(run_of(spec, sealed=sealed))

    assert set(spec_json(spec)) == set(SPEC_FIELDS)
    assert "s3cret-token" not in text and "pa55word" not in text and "basic_auth" not in text


def test_the_opened_secrets_join_the_public_headers_and_win_over_them():
    spec = ProbeSpec("https://example.com/", headers={"Accept": "text/plain", "X-Token": "public"})
    sealed = secrets_seal(KEY, {"X-Token": "secret"}, ("alice", "pa55word"))

    back = run_spec(run_of(spec, sealed=sealed), key=KEY, policy=POLICY, user_agent="ua")

    assert dict(back.headers) == {"Accept": "text/plain", "X-Token": "secret"}
    assert back.basic_auth == ("alice", "pa55word")


def test_a_run_sealed_under_another_region_s_key_is_refused():
    sealed = secrets_seal(region_key_derive("material-" + "m" * 30, "us-east"), {"X-Token": "t"}, None)

    with pytest.raises(RunInvalid, match="another key"):
        run_spec(run_of(ProbeSpec("https://example.com/"), sealed=sealed), key=KEY, policy=POLICY, user_agent="ua")


@pytest.mark.parametrize("broken", [{"spec": None}, {"spec": {"type": "http"}}, {"spec": {"url": "x", "timeout": []}},
                                    {"sealed": "not-a-token"}, {"monitor": None}, {"monitor": "7"}])
def test_a_malformed_run_is_refused(broken):
    run = {**run_of(ProbeSpec("https://example.com/")), **broken}

    with pytest.raises(RunInvalid):
        run_spec(run, key=KEY, policy=POLICY, user_agent="ua")


def test_a_field_of_a_newer_home_is_left_out():
    run = run_of(ProbeSpec("https://example.com/"))
    run["spec"]["some_future_option"] = True

    assert run_spec(run, key=KEY, policy=POLICY, user_agent="ua").url == "https://example.com/"


def test_the_result_echoes_the_run_and_reports_the_outcome_as_home_records_it():
    now = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    tls = TlsFacts(not_after=now + timedelta(days=30), not_before=now - timedelta(days=60), issuer="CN=CA",
                   subject="CN=example.com", days_left=30.0, version="TLSv1.3", verified=True)
    outcome = Outcome(success=False, status_code=503, response_time_ms=12.5, error="status 503", started_at=now,
                      phases={"dns": 0.001, "connect": 0.0025}, tls=tls, failed_condition="[STATUS] == 200")

    result = result_json(outcome, run_of(ProbeSpec("https://example.com/"), recheck=True), worker="agent@h1")

    assert result == {
        "monitor": 7, "region": "eu-west", "due": 1700000000.0, "task_id": "t-1", "token": "tok", "recheck": True,
        "worker": "agent@h1", "checked_at": "2026-12-03T11:00:00+00:00", "success": False, "status_code": 503,
        "response_time_ms": 12.5, "error": "status 503", "phases": {"dns": 1.0, "connect": 2.5},
        "tls": tls_facts_json(tls), "tls_not_after": "2027-01-02T11:00:00+00:00",
        "tls_fingerprint": tls_fingerprint(tls), "failed_condition": "[STATUS] == 200",
    }
    json.dumps(result)


def test_a_result_without_tls_says_so():
    outcome = Outcome(success=True, status_code=200, response_time_ms=3.0, error="", started_at=datetime.now(UTC))

    result = result_json(outcome, run_of(ProbeSpec("http://example.com/")), worker="w")

    assert (result["tls"], result["tls_not_after"], result["tls_fingerprint"], result["failed_condition"]) == (
        None, None, "", "")
