"""`lookout agent` and `lookout worker --region`: which queue they consume, and what they refuse to start without."""

import argparse
import subprocess
import sys

import pytest

from lookout import cli
from lookout.agent.keys import region_key_derive
from support.stack import LOOKOUT, base_environment

KEY = region_key_derive("m" * 40, "eu-west")


@pytest.fixture(autouse=True)
def region_environment(monkeypatch):
    """The commands export LOOKOUT_REGION for the process they start: undone after each test, not leaked. (Set
    first: monkeypatch restores only what it recorded, and deleting an absent variable records nothing.)"""
    monkeypatch.setenv("LOOKOUT_REGION", "")
    monkeypatch.delenv("LOOKOUT_REGION")


def run_lookout(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LOOKOUT, *args], env=base_environment(**env), capture_output=True, text=True,
                          timeout=60)


def test_an_agent_without_a_region_refuses_naming_the_variable():
    done = run_lookout("agent", CELERY_BROKER_URL="amqp://guest@127.0.0.1:1//", LOOKOUT_REGION_KEY=KEY)

    assert done.returncode != 0
    assert done.stderr.startswith("lookout agent: LOOKOUT_REGION is not set") and done.stderr.count("\n") == 1


@pytest.mark.parametrize(("env", "message"), [
    ({"LOOKOUT_REGION_KEY": KEY}, "CELERY_BROKER_URL is not set"),
    ({"CELERY_BROKER_URL": "amqp://x"}, "LOOKOUT_REGION_KEY is not set"),
    ({"CELERY_BROKER_URL": "amqp://x", "LOOKOUT_REGION_KEY": "not-a-key"}, "LOOKOUT_REGION_KEY: the region key is"),
    ({"CELERY_BROKER_URL": "amqp://x", "LOOKOUT_REGION_KEY_FILE": "/nonexistent"}, "LOOKOUT_REGION_KEY_FILE="),
    ({"CELERY_BROKER_URL": "amqp://x", "LOOKOUT_REGION_KEY": KEY, "LOOKOUT_ALLOW_PRIVATE_TARGETS": "maybe"},
     "LOOKOUT_ALLOW_PRIVATE_TARGETS='maybe' is not a boolean"),
    ({"CELERY_BROKER_URL": "amqp://x", "LOOKOUT_REGION_KEY": KEY, "LOOKOUT_TARGET_ALLOWLIST": "10.0.0.0/33"},
     "LOOKOUT_TARGET_ALLOWLIST: "),
    ({"CELERY_BROKER_URL": "amqp://x", "LOOKOUT_REGION_KEY": KEY, "LOOKOUT_LOG_FORMAT": "xml"},
     "LOOKOUT_LOG_FORMAT='xml' must be"),
])
def test_an_agent_names_the_missing_or_bad_variable_in_one_line_needing_no_database(env, message):
    done = run_lookout("agent", "--region", "eu-west", **env)

    assert done.returncode != 0
    assert done.stderr.startswith(f"lookout agent: {message}") and done.stderr.count("\n") == 1, done.stderr


def test_a_bad_region_name_is_refused():
    done = run_lookout("agent", "--region", "EU_West", CELERY_BROKER_URL="amqp://x", LOOKOUT_REGION_KEY=KEY)

    assert done.returncode != 0
    assert "--region='EU_West' is not a region name" in done.stderr


def test_an_agent_execs_celery_on_its_region_s_queue_only(monkeypatch):
    started = []
    monkeypatch.setattr(cli, "_exec", started.append)
    for name in ("DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "LOOKOUT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest@127.0.0.1:1//")
    monkeypatch.setenv("LOOKOUT_REGION_KEY", KEY)

    cli.main(["agent", "--region", "eu-west", "-c", "7"])

    assert started == [[sys.executable, "-m", "celery", "-A", "lookout.agent.app", "worker", "-P", "gevent",
                        "-c", "7", "-Q", "probes.eu-west", "--without-gossip", "--without-mingle",
                        "--without-heartbeat", "-n", "lookout-agent-eu-west@%h", "-l", "INFO"]]


@pytest.mark.parametrize(("regions", "region", "queues", "expected"), [
    (None, None, None, "probes,results,alerts,celery"),
    ("home,eu-west", None, None, "probes,results,alerts,celery"),
    ("home,eu-west", "home", None, "probes,results,alerts,celery"),
    ("home,eu-west", "eu-west", None, "probes.eu-west"),
    (None, "eu-west", None, "probes.eu-west"),
    ("main,eu-west", "main", None, "probes,results,alerts,celery"),
    ("home,eu-west", "eu-west", "probes.eu-west,celery", "probes.eu-west,celery"),
])
def test_a_worker_of_another_region_consumes_only_its_region_s_queue(monkeypatch, regions, region, queues,
                                                                      expected):
    monkeypatch.delenv("LOOKOUT_REGION", raising=False)
    if regions is None:
        monkeypatch.delenv("LOOKOUT_REGIONS", raising=False)
    else:
        monkeypatch.setenv("LOOKOUT_REGIONS", regions)

    assert cli.worker_queues(argparse.Namespace(region=region, queues=queues)) == expected


def test_a_worker_reads_its_region_from_lookout_region(monkeypatch):
    monkeypatch.setenv("LOOKOUT_REGIONS", "home,eu-west")
    monkeypatch.setenv("LOOKOUT_REGION", "eu-west")

    assert cli.worker_queues(argparse.Namespace(region=None, queues=None)) == "probes.eu-west"


def test_the_agent_imports_no_django_and_nothing_of_the_home_side():
    # kombu's JSON looks for django.utils.functional.Promise whenever Django is installed: that much of it (no
    # settings, no apps, no database) is kombu's, not the agent's.
    code = ("import sys, lookout.agent.app, lookout.agent.tasks\n"
            "allowed = ('lookout.agent', 'lookout.probes.engine', 'lookout.observability.metrics',"
            " 'lookout.observability.liveness', 'lookout.observability.logging', 'lookout.environment',"
            " 'lookout.batching')\n"
            "kombu_s = ('django', 'django.utils', 'django.utils.functional', 'django.utils.regex_helper',"
            " 'django.utils.version')\n"
            "print(sorted(m for m in sys.modules if (m.split('.')[0] == 'django' and m not in kombu_s)"
            " or (m.startswith('lookout.') and not m.startswith(allowed)"
            " and m not in ('lookout.observability', 'lookout.probes'))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=base_environment(CELERY_BROKER_URL="amqp://guest@127.0.0.1:1//",
                                               LOOKOUT_REGION="eu-west", LOOKOUT_REGION_KEY=KEY))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
