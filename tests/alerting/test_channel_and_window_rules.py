"""Channel and maintenance-window rules hold for every caller: the services refuse what the API refuses."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from lookout.alerting.maintenance import WindowSpec, window_create, window_spec, window_update
from lookout.alerting.models import Channel, MaintenanceWindow
from lookout.alerting.services import ChannelSpec, channel_create, channel_spec, channel_update
from lookout.core.errors import ValidationFailed
from lookout.monitors import services
from lookout.monitors.spec import MonitorSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def default_target_policy(settings):
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = False


@pytest.mark.parametrize(("spec", "field"), [
    pytest.param(ChannelSpec(name="mail", kind="email", address="not-an-address"), "address", id="bad-address"),
    pytest.param(ChannelSpec(name="mail", kind="email", address="ops@example.com", url="https://x.example/"), "url",
                 id="email-with-url"),
    pytest.param(ChannelSpec(name="hook", kind="webhook", url="http://10.0.0.1/hook"), "url", id="private-url"),
    pytest.param(ChannelSpec(name="hook", kind="webhook", url="ftp://hooks.example/"), "url", id="ftp-url"),
    pytest.param(ChannelSpec(name="chat", kind="slack", url="https://hooks.example/s", secret="s"), "secret",
                 id="slack-with-secret"),
    pytest.param(ChannelSpec(name="ops", kind="webhook", url="https://hooks.example/", system_events=True),
                 "system_events", id="system-events-not-staff"),
    pytest.param(ChannelSpec(name="", kind="email", address="ops@example.com"), "name", id="blank-name"),
    pytest.param(ChannelSpec(name="pager", kind="pager", url="https://hooks.example/"), "kind", id="unknown-kind"),
])
def test_a_channel_breaking_a_rule_is_refused_and_not_created(alice, default_target_policy, spec, field):
    with pytest.raises(ValidationFailed) as refused:
        channel_create(owner=alice, spec=spec)

    assert field in refused.value.errors
    assert not Channel.objects.exists()


def test_a_channels_kind_cannot_change_and_a_refused_change_leaves_it_as_it_was(alice):
    channel = channel_create(owner=alice, spec=ChannelSpec(name="mail", kind="email", address="ops@example.com"))

    with pytest.raises(ValidationFailed) as refused:
        channel_update(channel=channel, spec=replace(channel_spec(channel), kind="webhook",
                                                     url="https://hooks.example/", address=""))

    assert "kind" in refused.value.errors
    channel.refresh_from_db()
    assert (channel.kind, channel.address) == ("email", "ops@example.com")


def test_pointing_a_failing_channel_elsewhere_clears_its_failure(alice):
    channel = channel_create(owner=alice, spec=ChannelSpec(name="mail", kind="email", address="old@example.com"))
    Channel.objects.filter(pk=channel.pk).update(failing_since=timezone.now(), failing_reason="550 no such user")

    changed = channel_update(channel=channel, spec=replace(channel_spec(channel), address="new@example.com"))

    assert (changed.failing_since, changed.failing_reason) == (None, "")


NOW = timezone.now()


@pytest.mark.parametrize(("fields", "field"), [
    pytest.param({"starts_at": NOW, "ends_at": NOW - timedelta(hours=1)}, "ends_at", id="ends-before-start"),
    pytest.param({"starts_at": NOW}, "ends_at", id="no-end"),
    pytest.param({"starts_at": NOW, "ends_at": NOW + timedelta(hours=1), "cron": "0 4 * * *",
                  "duration_seconds": 3600}, "non_field_errors", id="both-kinds"),
    pytest.param({}, "non_field_errors", id="neither-kind"),
    pytest.param({"cron": "61 4 * * *", "duration_seconds": 3600}, "cron", id="bad-cron"),
    pytest.param({"cron": "0 4 * * *", "duration_seconds": 10}, "duration_seconds", id="too-short"),
    pytest.param({"cron": "0 4 * * *", "duration_seconds": 3600, "timezone": "Mars/Olympus"}, "timezone",
                 id="bad-zone"),
])
def test_a_window_breaking_a_rule_is_refused_and_not_created(alice, fields, field):
    with pytest.raises(ValidationFailed) as refused:
        window_create(owner=alice, spec=WindowSpec(**fields))

    assert field in refused.value.errors
    assert not MaintenanceWindow.objects.exists()


def test_a_window_for_another_owners_monitor_is_refused(alice, bob):
    bobs = services.monitor_create(owner=bob, spec=MonitorSpec(name="b", url="https://b.example/", interval=60))

    with pytest.raises(ValidationFailed) as refused:
        window_create(owner=alice, spec=WindowSpec(monitor=bobs.pk, cron="0 4 * * *", duration_seconds=3600))

    assert "monitor" in refused.value.errors


def test_a_window_turns_from_one_off_to_recurring_when_the_other_fields_are_cleared(alice):
    window = window_create(owner=alice, spec=WindowSpec(starts_at=NOW, ends_at=NOW + timedelta(hours=1)))

    changed = window_update(window=window, spec=replace(window_spec(window), starts_at=None, ends_at=None,
                                                        cron="0  4 * * sun", duration_seconds=3600))

    assert (changed.cron, changed.starts_at) == ("0 4 * * sun", None)
