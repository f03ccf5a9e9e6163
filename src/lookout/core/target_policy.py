"""The installation's safe-target policy, from settings (LOOKOUT_ALLOW_PRIVATE_TARGETS, LOOKOUT_TARGET_ALLOWLIST),
and the save-time check of a target's url that monitors and alert channels share."""

from django.conf import settings

from lookout.probes.engine import TargetPolicy, UnsafeTarget, target_check, url_validate


def target_policy() -> TargetPolicy:
    return TargetPolicy(allow_private=settings.LOOKOUT_ALLOW_PRIVATE_TARGETS,
                        allowlist=tuple(settings.LOOKOUT_TARGET_ALLOWLIST))


def target_url_check(probe_type: str, url: str) -> None:
    """Raise ValueError, with a message for the user, unless url is a well-formed target of this probe type that
    the policy allows (host names by the addresses they resolve to now; probes and deliveries check again)."""
    if not url:
        raise ValueError("This field is required.")
    url_validate(probe_type, url)
    try:
        target_check(url, target_policy())
    except UnsafeTarget as exc:
        raise ValueError(str(exc)) from exc
