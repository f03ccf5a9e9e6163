"""The installation's safe-target policy, from settings (LOOKOUT_ALLOW_PRIVATE_TARGETS, LOOKOUT_TARGET_ALLOWLIST)."""

from django.conf import settings

from lookout.probes.engine import TargetPolicy


def target_policy() -> TargetPolicy:
    return TargetPolicy(allow_private=settings.LOOKOUT_ALLOW_PRIVATE_TARGETS,
                        allowlist=tuple(settings.LOOKOUT_TARGET_ALLOWLIST))
