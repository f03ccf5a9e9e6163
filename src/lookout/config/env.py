"""The settings' environment readers; they live in lookout.environment, which the Django-free agent shares."""

from lookout.environment import (
    EnvironmentInvalid,
    env_bool,
    env_cidrs,
    env_float,
    env_int,
    env_list,
    env_regions,
    env_required,
    env_str,
)

__all__ = ["EnvironmentInvalid", "env_bool", "env_cidrs", "env_float", "env_int", "env_list", "env_regions",
           "env_required", "env_str"]
