"""The channels API: kinds, validation (400 and nothing changes), owner scoping, secrets, test messages."""

import pytest

from lookout.alerting.models import Channel, Notification
from lookout.core.encryption import secret_decrypt
from lookout.monitors.models import Monitor
from support.receivers import Answer

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/channels/"


def create(client, **fields) -> dict:
    response = client.post(CHANNELS, fields, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_it_creates_lists_changes_and_deletes_each_kind(alice_api):
    email = create(alice_api, name="ops", kind="email", address="ops@example.com", is_default=True)
    hook = create(alice_api, name="hook", kind="webhook", url="https://hooks.example.com/lookout", secret="s3cret")
    slack = create(alice_api, name="slack", kind="slack", url="https://hooks.slack.com/services/T/B/X")

    listed = alice_api.get(CHANNELS).json()["results"]
    assert [c["kind"] for c in listed] == ["email", "webhook", "slack"]
    assert (email["is_default"], email["failing"]) == (True, False)
    assert (hook["secret_set"], slack["secret_set"]) == (True, False)
    assert "secret" not in hook

    changed = alice_api.patch(f"{CHANNELS}{hook['id']}/", {"name": "renamed"}, format="json")
    assert changed.status_code == 200 and changed.json()["name"] == "renamed"
    assert alice_api.delete(f"{CHANNELS}{slack['id']}/").status_code == 204
    assert Channel.objects.count() == 2


def test_a_webhook_secret_is_write_only_and_encrypted_at_rest(alice_api):
    hook = create(alice_api, name="hook", kind="webhook", url="https://hooks.example.com/", secret="s3cret")
    stored = Channel.objects.get(pk=hook["id"]).secret
    assert stored != "s3cret" and secret_decrypt(stored) == "s3cret"
    assert "s3cret" not in alice_api.get(f"{CHANNELS}{hook['id']}/").content.decode()


@pytest.mark.parametrize(("fields", "field"), [
    ({"name": "x", "kind": "sms", "address": "+3312345678"}, "kind"),
    ({"name": "x", "kind": "webhook", "url": "not a url"}, "url"),
    ({"name": "x", "kind": "webhook", "url": "ftp://example.com/hook"}, "url"),
    ({"name": "x", "kind": "slack"}, "url"),
    ({"name": "x", "kind": "email", "address": "not-an-address"}, "address"),
    ({"name": "x", "kind": "email"}, "address"),
    ({"name": "x", "kind": "email", "address": "a@example.com", "url": "https://example.com/"}, "url"),
    ({"name": "x", "kind": "slack", "url": "https://hooks.slack.com/x", "secret": "s"}, "secret"),
    ({"name": "x", "kind": "webhook", "url": "https://example.com/", "headers": {}}, "headers"),
    ({"name": "x", "kind": "webhook", "url": "https://example.com/", "system_events": True}, "system_events"),
])
def test_bad_input_is_a_clear_400_and_creates_nothing(alice_api, fields, field):
    response = alice_api.post(CHANNELS, fields, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert Channel.objects.count() == 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/",
                                 "http://10.0.0.7/hook", "http://[::1]/hook"])
def test_webhook_and_slack_urls_obey_the_safe_target_rules_of_monitors(alice_api, settings, url):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False

    for kind in ("webhook", "slack"):
        response = alice_api.post(CHANNELS, {"name": "x", "kind": kind, "url": url}, format="json")
        assert response.status_code == 400
        assert "LOOKOUT_ALLOW_PRIVATE_TARGETS" in response.json()["url"][0]
    assert Channel.objects.count() == 0


def test_only_staff_may_route_installation_events_to_a_channel(alice_api, bob, bob_api):
    bob.is_staff = True
    bob.save()
    assert create(bob_api, name="ops", kind="email", address="ops@example.com", system_events=True)["system_events"]
    response = alice_api.post(CHANNELS, {"name": "x", "kind": "email", "address": "a@example.com",
                                         "system_events": True}, format="json")
    assert response.status_code == 400


def test_the_kind_cannot_change_and_a_bad_patch_changes_nothing(alice_api, settings):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False
    hook = create(alice_api, name="hook", kind="webhook", url="https://example.com/hook")
    for patch in ({"kind": "email"}, {"url": "http://169.254.169.254/"}, {"url": ""}, {"address": "a@example.com"}):
        assert alice_api.patch(f"{CHANNELS}{hook['id']}/", patch, format="json").status_code == 400, patch
    assert Channel.objects.get(pk=hook["id"]).url == "https://example.com/hook"
    assert alice_api.put(f"{CHANNELS}{hook['id']}/", {"name": "x", "kind": "webhook"},
                         format="json").status_code == 405


def test_someone_elses_channels_are_404_and_cannot_be_named_by_a_monitor(alice_api, bob_api):
    bobs = create(bob_api, name="bob's", kind="email", address="bob@example.com")
    assert alice_api.get(f"{CHANNELS}{bobs['id']}/").status_code == 404
    assert alice_api.patch(f"{CHANNELS}{bobs['id']}/", {"name": "x"}, format="json").status_code == 404
    assert alice_api.delete(f"{CHANNELS}{bobs['id']}/").status_code == 404
    assert alice_api.post(f"{CHANNELS}{bobs['id']}/test/").status_code == 404
    assert alice_api.get(CHANNELS).json()["count"] == 0

    response = alice_api.post("/api/v1/monitors/", {"name": "m", "url": "https://example.com/", "interval": 60,
                                                    "channels": [bobs["id"]]}, format="json")

    assert response.status_code == 400
    assert "does not exist" in response.json()["channels"][0]
    assert Monitor.objects.count() == 0


def test_a_monitor_names_its_channels(alice_api):
    first = create(alice_api, name="a", kind="email", address="a@example.com")
    second = create(alice_api, name="b", kind="email", address="b@example.com")
    monitor = alice_api.post("/api/v1/monitors/", {"name": "m", "url": "https://example.com/", "interval": 60,
                                                   "channels": [first["id"]]}, format="json").json()
    assert monitor["channels"] == [first["id"]]

    patched = alice_api.patch(f"/api/v1/monitors/{monitor['id']}/", {"channels": [first["id"], second["id"]]},
                              format="json").json()

    assert sorted(patched["channels"]) == sorted([first["id"], second["id"]])
    assert alice_api.patch(f"/api/v1/monitors/{monitor['id']}/", {"channels": [999999]},
                           format="json").status_code == 400
    assert Monitor.objects.get(pk=monitor["id"]).channels.count() == 2


def test_a_test_message_reaches_a_webhook_signed_and_is_recorded(alice_api, webhook):
    hook = create(alice_api, name="hook", kind="webhook", url=webhook.url, secret="s3cret")

    response = alice_api.post(f"{CHANNELS}{hook['id']}/test/")

    assert response.status_code == 200
    outcome = response.json()
    assert (outcome["delivered"], outcome["status_code"], outcome["permanent"]) == (True, 200, False)
    [received] = webhook.received
    assert received.signature_valid("s3cret") and not received.signature_valid("wrong")
    assert received.headers["X-Lookout-Event-Id"] == outcome["event_id"] == received.json()["event_id"]
    assert received.json()["event"] == "channel.test"
    notification = Notification.objects.get(pk=outcome["notification"])
    assert (notification.state, notification.attempts) == ("delivered", 1)


def test_a_test_message_answered_with_a_4xx_marks_the_channel_failing_until_it_is_fixed(alice_api, webhook):
    webhook.answer(Answer(status=404))
    hook = create(alice_api, name="hook", kind="webhook", url=webhook.url)

    outcome = alice_api.post(f"{CHANNELS}{hook['id']}/test/").json()

    assert (outcome["delivered"], outcome["status_code"], outcome["permanent"]) == (False, 404, True)
    shown = alice_api.get(f"{CHANNELS}{hook['id']}/").json()
    assert shown["failing"] and "404" in shown["failing_reason"]
    fixed = alice_api.patch(f"{CHANNELS}{hook['id']}/", {"url": webhook.url + "/v2"}, format="json").json()
    assert (fixed["failing"], fixed["failing_reason"]) == (False, "")


def test_a_test_message_that_finds_nobody_listening_is_reported_not_retried(alice_api):
    hook = create(alice_api, name="hook", kind="webhook", url="http://127.0.0.1:9/nobody")

    outcome = alice_api.post(f"{CHANNELS}{hook['id']}/test/").json()

    assert (outcome["delivered"], outcome["permanent"]) == (False, False)
    assert "refused" in outcome["error"]
    assert Notification.objects.get().state == "failed"  # one attempt: never picked up by the retry sweep
    assert not alice_api.get(f"{CHANNELS}{hook['id']}/").json()["failing"]


def test_a_test_email_arrives_through_smtp(alice_api, smtp):
    channel = create(alice_api, name="ops", kind="email", address="ops@example.com")

    outcome = alice_api.post(f"{CHANNELS}{channel['id']}/test/").json()

    assert outcome["delivered"], outcome
    [mail] = smtp.received()
    assert mail.recipients == ["ops@example.com"]
    assert mail.subject == "[Lookout] Test message from Lookout"
    assert mail.event_id == outcome["event_id"]


def test_a_test_slack_message_is_readable_text(alice_api, webhook):
    channel = create(alice_api, name="slack", kind="slack", url=webhook.url)

    assert alice_api.post(f"{CHANNELS}{channel['id']}/test/").json()["delivered"]

    text = webhook.received[0].json()["text"]
    assert text.startswith(":wave: *Test message from Lookout*")
    assert "this channel works" in text
