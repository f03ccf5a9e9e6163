"""Human-readable text of an alert, shared by the email and Slack channels."""

from typing import Any

from lookout.alerting.channels.base import Message


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return " ".join(part for part in (f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
                                      f"{secs}s" if secs or not (hours or minutes) else "") if part)


def message_subject(message: Message) -> str:
    payload = message.payload
    name = (payload.get("monitor") or {}).get("name", "")
    if message.event == "monitor.down":
        confirmed = (payload.get("incident") or {}).get("confirmed")
        return f"DOWN: {name} ({confirmed})" if confirmed else f"DOWN: {name}"
    if message.event == "monitor.up":
        return f"UP: {name} (down for {_duration(payload['incident']['duration_seconds'])})"
    if message.event == "tls.expiring":
        return f"Certificate expiring: {name}"
    if message.event == "lookout.degraded":
        return "Lookout suspects itself: many monitors failing at once, alerts held"
    if message.event == "lookout.recovered":
        return "Lookout recovered: monitor failures are back to normal"
    region = (payload.get("episode") or {}).get("region", "")
    if message.event == "lookout.region.suspect":
        return f"Region {region} suspect: its failures stand far above the other regions', its votes not counted"
    if message.event == "lookout.region.recovered":
        return f"Region {region} recovered: its votes count again"
    return "Test message from Lookout"


def message_lines(message: Message) -> list[str]:
    payload = message.payload
    monitor = payload.get("monitor") or {}
    lines: list[str] = []
    if monitor:
        lines.append(f"Monitor: {monitor.get('name')} ({monitor.get('url') or monitor.get('type')})")
    incident = payload.get("incident")
    if incident:
        lines.append(f"Down since: {incident['started_at']}")
        if incident.get("ended_at"):
            lines.append(f"Up again: {incident['ended_at']} (down for {_duration(incident['duration_seconds'])})")
        if incident.get("cause"):
            lines.append(f"Cause: {incident['cause']}")
        if incident.get("confirmed"):
            lines.append(f"Confirmed: {incident['confirmed']}")
    certificate = payload.get("certificate")
    if certificate:
        lines.append(f"Certificate expires: {certificate.get('not_after')} ({certificate.get('days_left')} days left)")
    episode = payload.get("episode")
    if episode and episode.get("region"):
        lines.extend(_region_lines(message.event, episode))
    elif episode:
        lines.append(f"{episode['failing']} of {episode['probed']} recently probed monitors failing "
                     f"(since {episode['started_at']}).")
        if message.event == "lookout.degraded":
            lines.append("Per-monitor alerts are held until Lookout knows whether it is itself or the world.")
        else:
            lines.append(f"Alerts dropped (their monitors came back): {episode.get('alerts_dropped', 0)}; "
                         f"still held: {episode.get('alerts_held', 0)}, each sent if its monitor is still down "
                         "at its next probe.")
    if payload.get("message"):
        lines.append(str(payload["message"]))
    if payload.get("link"):
        lines.append(f"Details: {payload['link']}")
    return lines


def _region_lines(event: str, episode: dict[str, Any]) -> list[str]:
    lines = [f"Region {episode['region']}: {episode.get('failures')} of {episode.get('results')} results failed "
             f"({episode.get('failure_percent')} %) in the last {_duration(episode.get('window_seconds'))}; "
             f"the other regions at most {episode.get('others_percent')} % (suspect since {episode['started_at']})."]
    if event == "lookout.region.suspect":
        lines.append("Its monitors are decided by their other regions until it recovers; check its network, DNS "
                     "and workers.")
    else:
        lines.append(f"Recovered at {episode.get('ended_at')}: its votes count again.")
    return lines
