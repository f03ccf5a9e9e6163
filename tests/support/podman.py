"""Podman on this machine, for the tests that build Lookout's images and run the chart's containers in them.

Podman runs as root (through `sudo -n` for another user) with runc and the cgroupfs manager (crun refuses this
machine's hybrid cgroups), host networking, and ulimits no higher than the machine's (podman's own defaults are
refused). Registry images cannot be pulled here, so the base image is made from Debian's packages by mmdebstrap
and cached by its inputs. Builds see pip's configuration of this machine (its CA bundle, local wheel directories
and indexes) through read-only mounts that only RUN steps see, never the images.
"""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from support.chart import Rendered, container_env, pod_spec

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# Debian's python3 (3.11 on bookworm, as in the tests) with its venv module; libstdc++6, which greenlet's wheel
# links (python:3.11-slim has it); passwd for the image's useradd. The merged-usr hook keeps usrmerge and the
# perl it needs out (50 MB). No documentation, manuals or locales.
MMDEBSTRAP_OPTIONS = (
    "--variant=essential",
    "--include=python3,python3-venv,python-is-python3,ca-certificates,libstdc++6,passwd",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lookout" / "podman-base"


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unusable(message: str) -> None:
    """Fail under CI=true (a suite that skips its container test proves nothing there); skip elsewhere."""
    if _under_ci():
        pytest.fail(message)
    pytest.skip(message)


def _ulimits() -> list[str]:
    """nofile 20000 and nproc 4096, or the machine's hard limits where they are lower."""
    options = []
    for name, limit, wanted in (("nofile", resource.RLIMIT_NOFILE, 20000), ("nproc", resource.RLIMIT_NPROC, 4096)):
        hard = resource.getrlimit(limit)[1]
        value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        options += ["--ulimit", f"{name}={value}:{value}"]
    return options


@dataclass(frozen=True)
class Podman:
    prefix: tuple[str, ...]  # ("sudo", "-n") for another user than root, else ()

    @property
    def podman(self) -> list[str]:
        return [*self.prefix, "podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.podman, *args], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])} ... exited {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    @property
    def limits(self) -> list[str]:
        """What every container and build gets: host networking and the machine's ulimits."""
        return ["--network", "host", *_ulimits()]

    def image_exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0

    def image_size(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def build(self, *, tag: str, dockerfile: Path, context: Path, build_args: dict[str, str],
              mounts: list[str], log: Path, timeout: float = 900) -> float:
        """`podman build`; its seconds. The build's output goes to `log` (its tail into a failure)."""
        args = ["build", *self.limits, "--tag", tag, "--file", str(dockerfile), *mounts]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        started = time.monotonic()
        with open(log, "w") as output:
            done = subprocess.run([*self.podman, *args, str(context)], stdout=output, stderr=subprocess.STDOUT,
                                  timeout=timeout)
        seconds = time.monotonic() - started
        assert done.returncode == 0, f"podman build of {dockerfile} failed:\n{log.read_text()[-5000:]}"
        return seconds


def podman_or_fail() -> Podman:
    """Podman and what it needs here (runc, mmdebstrap), working; otherwise fail under CI=true, skip elsewhere.

    ./scripts/test installs Debian's podman, runc and mmdebstrap when they are missing.
    """
    prefix: tuple[str, ...] = ()
    if os.geteuid() != 0:
        if not shutil.which("sudo") or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode:
            unusable("podman runs as root here, and sudo -n is not available")
        prefix = ("sudo", "-n")
    for tool in ("podman", "runc", "mmdebstrap"):
        if not shutil.which(tool):
            unusable(f"{tool} is not installed (./scripts/test installs Debian's podman, runc and mmdebstrap)")
    podman = Podman(prefix)
    done = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if done.returncode != 0 or done.stdout.strip() != "runc":
        unusable(f"podman is not usable with runc here:\n{done.stdout}\n{done.stderr}")
    return podman


def base_image(podman: Podman, log: Path) -> tuple[str, float]:
    """A Debian bookworm image from Debian's packages (mmdebstrap); its name and the seconds it took.

    Named after the hash of mmdebstrap's arguments: an image already in podman's storage, or a tarball in
    ~/.cache/lookout/podman-base, is reused while those do not change.
    """
    arguments = [*MMDEBSTRAP_OPTIONS, SUITE, "TARGET", *MIRRORS]
    key = hashlib.sha256(json.dumps(arguments).encode()).hexdigest()[:16]
    image = f"localhost/lookout-test-base:{key}"
    started = time.monotonic()
    if podman.image_exists(image):
        return image, time.monotonic() - started
    tarball = CACHE / f"{key}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / f"{key}.partial-{os.getpid()}.tar"
        command = ["mmdebstrap", "--quiet", "--format=tar", *MMDEBSTRAP_OPTIONS, SUITE, str(partial), *MIRRORS]
        with open(log, "w") as output:
            done = subprocess.run([*podman.prefix, *command], stdout=output, stderr=subprocess.STDOUT, timeout=600)
        assert done.returncode == 0, f"mmdebstrap failed:\n{log.read_text()[-5000:]}"
        partial.rename(tarball)  # atomic: a concurrent run sees the whole tarball or none
    podman("import", "--quiet", str(tarball), image, timeout=300)
    return image, time.monotonic() - started


def _pip_configuration() -> dict[str, str]:
    """pip's settings on this machine ({"cert": ..., "find-links": ...}), files and PIP_* variables alike."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                          timeout=60, check=True)
    settings: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition("=")
        settings[name.rsplit(".", 1)[-1]] = value.strip().strip("'\"")
    for name in ("cert", "find-links", "index-url", "extra-index-url", "trusted-host"):
        variable = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if variable:  # the environment wins over files, as in pip
            settings[name] = variable
    return settings


def pip_build_mounts(workdir: Path) -> list[str]:
    """`podman build` options that give the build's pip what pip has here: the CA bundle it trusts and the local
    wheel directories and indexes it reads (PyPI is reached as usual), as /etc/pip.conf.

    They are bind mounts for RUN steps only (nothing of them is committed); the final image stage has no RUN,
    so not even their mount points reach it.
    """
    settings = _pip_configuration()
    lines = ["[global]"]
    local: list[str] = []
    if settings.get("cert"):
        lines.append(f"cert = {settings['cert']}")
        local.append(settings["cert"])
    for name in ("index-url", "extra-index-url", "find-links", "trusted-host"):
        values = settings.get(name, "").split()
        if not values:
            continue
        lines.append(f"{name} = {' '.join(values)}")
        for value in values:
            parts = urlsplit(value)
            if parts.scheme == "file":
                local.append(parts.path.rstrip("/").removesuffix("/simple") or parts.path)
            elif not parts.scheme and name == "find-links":
                local.append(value)
    config = workdir / "pip.conf"
    config.write_text("\n".join(lines) + "\n")
    mounts = ["--volume", f"{config}:/etc/pip.conf:ro"]
    for path in dict.fromkeys(local):
        if Path(path).exists():
            mounts += ["--volume", f"{path}:{path}:ro"]
    return mounts


def _security_context(spec: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The container's effective securityContext: the pod's, overridden field by field by the container's."""
    return {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}


def run_options(item: Rendered, container: dict[str, Any], objects: list[Rendered], *,
                secrets: dict[str, dict[str, str]], files: dict[str, Path] | None = None,
                hosts: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """`podman run` options and arguments that give `container` of `item` what the kubelet would give it:
    command and args with Kubernetes' rules against the image's ENTRYPOINT and CMD, the environment resolved
    from the rendered ConfigMaps and Secrets (`secrets`: those the chart does not render), the securityContext's
    user, read-only root, capabilities and privilege escalation, emptyDir volumes as tmpfs mounts, and
    configMap volumes from `files` (volume name -> a directory holding the keys). `hosts` stand in for cluster
    DNS names (a Service on this machine's address); `extra` is more options (what else the kubelet would add).
    The image and the arguments come last.
    """
    spec = pod_spec(item)
    security = _security_context(spec, container)
    options: list[str] = []
    if "runAsUser" in security:
        if security.get("runAsNonRoot"):
            assert security["runAsUser"] != 0, f"{container['name']}: runAsNonRoot with runAsUser 0"
        options += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"]
    if "fsGroup" in security:
        options += ["--group-add", str(security["fsGroup"])]
    if security.get("readOnlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]  # writable only where a volume is mounted
    for capability in (security.get("capabilities") or {}).get("drop", []):
        options += ["--cap-drop", capability]
    for capability in (security.get("capabilities") or {}).get("add", []):
        options += ["--cap-add", capability]
    if security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            size = (volume["emptyDir"] or {}).get("sizeLimit", "")
            size_option = f",tmpfs-size={size.removesuffix('i').lower()}" if size else ""
            options += ["--mount", f"type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777{size_option}"]
        elif "configMap" in volume:
            options += ["--volume", f"{(files or {})[mount['name']]}:{mount['mountPath']}:ro"]
        else:
            raise AssertionError(f"unsupported volume {volume}")
    for name, address in (hosts or {}).items():
        options += ["--add-host", f"{name}:{address}"]
    for name, value in container_env(container, objects, secrets).items():
        options += ["--env", f"{name}={value}"]
    if container.get("workingDir"):
        options += ["--workdir", container["workingDir"]]
    options += extra
    # Kubernetes: `command` replaces the image's ENTRYPOINT and drops its CMD; `args` alone replaces the CMD.
    if "command" in container:
        options += ["--entrypoint", json.dumps(container["command"]), container["image"], *container.get("args", [])]
    else:
        options += [container["image"], *container.get("args", [])]
    return options
