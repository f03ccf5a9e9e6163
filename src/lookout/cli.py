"""The `lookout` command: migrate | api | worker | agent | beat | manage | dev.

Server subcommands replace this process (exec) with gunicorn or Celery, so signals reach them directly.
"""

import argparse
import importlib
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from lookout.agent.settings import agent_settings, region_name_check
from lookout.dev import DEV_BIND, DEV_DATA_DIR, dev_data_dir_find, dev_environment, dev_run
from lookout.environment import EnvironmentInvalid, env_list

CELERY_APP = "lookout.config.celery_app"
AGENT_APP = "lookout.agent.app"
HOME_QUEUES = "probes,results,alerts,celery"
SCHEDULER = "lookout.scheduling.scheduler:LookoutScheduler"
DEFAULT_CONCURRENCY = 50
# Database connections per worker process. Probes hold none: they read their monitors and write their results
# through the process's batchers (lookout.probes.batching), which use 3 between them whatever the concurrency;
# the rest serve other tasks (alert deliveries, sweeps, check-now's stored result) while they run.
DEFAULT_WORKER_DB_POOL_SIZE = 10


class ConfigurationMissing(SystemExit):
    pass


def require_env(*names: str) -> None:
    """Refuse to start without external services: embedded defaults exist only in `lookout dev`."""
    for name in names:
        if not (os.environ.get(name) or os.environ.get(f"{name}_FILE")):
            raise ConfigurationMissing(
                f"lookout: {name} is not set. Set it (or {name}_FILE) to your "
                f"{'database' if name == 'DATABASE_URL' else 'broker'} URL, "
                "or run `lookout dev` for a self-contained local instance."
            )


def settings_check() -> None:
    """Read the settings here, so a bad variable (a weak SECRET_KEY, LOOKOUT_...=abc) is one line, not a traceback
    from inside gunicorn, Celery or Django."""
    try:
        importlib.import_module("lookout.config.settings")
    except (ImproperlyConfigured, EnvironmentInvalid) as exc:
        raise ConfigurationMissing(f"lookout: {exc}") from None


def _exec(argv: list[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def _django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lookout.config.settings")
    import django

    django.setup()


def cmd_migrate(args: argparse.Namespace) -> None:
    require_env("DATABASE_URL")
    settings_check()
    _django_setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False)
    call_command("createcachetable")
    # Models import only once Django is set up (above), which the other subcommands never do in this process.
    from lookout.scheduling.periodic_tasks import periodic_tasks_seed

    for name in periodic_tasks_seed():
        print(f"created periodic task {name}")


HELP_ARGUMENTS = {"help", "--help", "-h"}


def _manage(rest: list[str]) -> None:
    if not rest or rest[0] in HELP_ARGUMENTS:
        # Help touches no database: placeholders let the settings load, so every command is listed.
        os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    require_env("DATABASE_URL")
    settings_check()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lookout.config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["lookout manage", *rest])


def cmd_manage(args: argparse.Namespace) -> None:
    configured = os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_URL_FILE")
    data_dir = None if configured else dev_data_dir_find(Path.cwd())
    if data_dir is not None:
        # Nothing configured, but a `lookout dev` instance lives here: manage that one.
        print(f"lookout manage: using the lookout dev instance in {data_dir}", file=sys.stderr)
        os.environ.update(dev_environment(data_dir, DEV_BIND))
    _manage(args.rest)


def cmd_api(args: argparse.Namespace) -> None:
    require_env("DATABASE_URL", "CELERY_BROKER_URL")  # the API publishes check-now probes
    settings_check()
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:lookout.config.gunicorn", "--bind", args.bind]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    _exec([*argv, "lookout.config.wsgi:application"])


def worker_concurrency() -> int:
    value = os.environ.get("LOOKOUT_WORKER_CONCURRENCY", str(DEFAULT_CONCURRENCY))
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationMissing(f"lookout: LOOKOUT_WORKER_CONCURRENCY={value!r} must be a positive integer")
    return int(value)


def home_region() -> str:
    """The first of LOOKOUT_REGIONS (the contract's rule), read without Django."""
    return next(iter(env_list("LOOKOUT_REGIONS")), "home")


def _region(args: argparse.Namespace) -> str:
    """--region, else LOOKOUT_REGION, else the home region; exported, so the started process reads the same."""
    region = args.region or os.environ.get("LOOKOUT_REGION") or home_region()
    try:
        region_name_check(region, "--region" if args.region else "LOOKOUT_REGION")
    except EnvironmentInvalid as exc:
        raise ConfigurationMissing(f"lookout: {exc}") from None
    os.environ["LOOKOUT_REGION"] = region
    return region


def worker_queues(args: argparse.Namespace) -> str:
    """A worker of another region than home's consumes only its region's runs."""
    region = _region(args)
    if args.queues:
        return str(args.queues)
    return HOME_QUEUES if region == home_region() else f"probes.{region}"


def cmd_worker(args: argparse.Namespace) -> None:
    require_env("DATABASE_URL", "CELERY_BROKER_URL")
    concurrency = worker_concurrency()
    queues = worker_queues(args)
    settings_check()
    # Celery closes Django's connection at every task start and end; pooled, close() hands it back instead of
    # tearing down a Postgres backend each time (it was twice per probe before probes wrote in batches).
    os.environ.setdefault("LOOKOUT_DB_POOL_SIZE", str(DEFAULT_WORKER_DB_POOL_SIZE))
    # `celery -P gevent` monkey-patches before Django, psycopg or requests are imported.
    # --without-heartbeat (worker *event* heartbeats, not AMQP's): with any event sending on, Celery 5.7's loop
    # for green pools waits 100 ms on the idle event connection after every message, capping a worker at ten
    # messages (probes, alert deliveries) a second. Nothing reads those events; mingle and gossip are off too.
    _exec([sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "-P", "gevent",
           "-c", str(concurrency), "-Q", queues, "--without-gossip", "--without-mingle",
           "--without-heartbeat", "-n", args.name, "-l", args.loglevel])


def cmd_agent(args: argparse.Namespace) -> None:
    """The database-less region agent: the broker, the region and its key are all it needs (no Django setup)."""
    if not (args.region or os.environ.get("LOOKOUT_REGION")):
        raise ConfigurationMissing("lookout agent: LOOKOUT_REGION is not set (or --region): the region this agent "
                                   "probes, one of the home installation's LOOKOUT_REGIONS")
    region = _region(args)
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigurationMissing(f"lookout agent: -c {args.concurrency} must be a positive integer")
    concurrency = args.concurrency or worker_concurrency()
    try:
        agent_settings()  # every variable checked here: one line, not a traceback from inside Celery
    except EnvironmentInvalid as exc:
        raise ConfigurationMissing(f"lookout agent: {exc}") from None
    # As the worker (cmd_worker): gevent patches first; no events, gossip or mingle, and (the app's settings) no
    # remote control, so nothing but probes.<region> is declared.
    _exec([sys.executable, "-m", "celery", "-A", AGENT_APP, "worker", "-P", "gevent",
           "-c", str(concurrency), "-Q", f"probes.{region}", "--without-gossip", "--without-mingle",
           "--without-heartbeat", "-n", args.name.replace("%r", region), "-l", args.loglevel])


def cmd_beat(args: argparse.Namespace) -> None:
    require_env("DATABASE_URL", "CELERY_BROKER_URL")
    settings_check()
    _exec([sys.executable, "-m", "celery", "-A", CELERY_APP, "beat", "-S", SCHEDULER, "-l", args.loglevel])


def cmd_dev(args: argparse.Namespace) -> None:
    if args.dev_command == "manage":
        data_dir = Path(args.data_dir).resolve()
        if not (data_dir / "lookout.sqlite3").exists():
            raise ConfigurationMissing(f"lookout dev: no lookout dev data in {data_dir}; start `lookout dev` first")
        os.environ.update(dev_environment(data_dir, args.bind))
        _manage(args.rest)
        return
    raise SystemExit(dev_run(data_dir=args.data_dir, bind=args.bind, reset=args.reset))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lookout", description="Lookout uptime monitoring.")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(func=cmd_migrate)

    api = sub.add_parser("api", help="serve the REST API with gunicorn")
    api.add_argument("--bind", default="0.0.0.0:8000", help="HOST:PORT (default 0.0.0.0:8000)")
    api.add_argument("--workers", type=int, default=None, help="gunicorn worker processes (default 2)")
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run probes (Celery, gevent pool; LOOKOUT_WORKER_CONCURRENCY)")
    worker.add_argument("--queues", default=None,
                        help=f"queues to consume (default {HOME_QUEUES}; in another region: probes.REGION)")
    worker.add_argument("--region", default=None,
                        help="the region this worker probes (default LOOKOUT_REGION, else the home region)")
    worker.add_argument("--name", default="lookout-worker@%h", help="Celery node name")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=cmd_worker)

    agent = sub.add_parser("agent", help="probe a region's runs without a database (CELERY_BROKER_URL, "
                                         "LOOKOUT_REGION_KEY)")
    agent.add_argument("--region", default=None, help="the region this agent probes (default LOOKOUT_REGION)")
    agent.add_argument("-c", "--concurrency", type=int, default=None,
                       help=f"probes at once (default LOOKOUT_WORKER_CONCURRENCY, else {DEFAULT_CONCURRENCY})")
    agent.add_argument("--name", default="lookout-agent-%r@%h", help="Celery node name (%%r: the region)")
    agent.add_argument("--loglevel", default="INFO")
    agent.set_defaults(func=cmd_agent)

    beat = sub.add_parser("beat", help="send due probes (run exactly one)")
    beat.add_argument("--loglevel", default="INFO")
    beat.set_defaults(func=cmd_beat)

    manage = sub.add_parser("manage", help="run a Django management command (`lookout manage help` lists them)",
                            add_help=False)
    manage.add_argument("rest", nargs=argparse.REMAINDER)
    manage.set_defaults(func=cmd_manage)

    dev = sub.add_parser("dev", help="API + worker + beat on embedded SQLite and broker, no services needed")
    dev.add_argument("--bind", default=DEV_BIND, help=f"HOST:PORT of the API (default {DEV_BIND})")
    dev.add_argument("--data-dir", default=DEV_DATA_DIR, help=f"where the databases live (default {DEV_DATA_DIR})")
    dev.add_argument("--reset", action="store_true", help="start from empty databases")
    dev.set_defaults(func=cmd_dev, dev_command=None)
    dev_sub = dev.add_subparsers(dest="dev_command", metavar="manage")
    dev_manage = dev_sub.add_parser("manage", add_help=False,
                                    help="a management command on this data directory, e.g. createapiuser bob")
    dev_manage.add_argument("rest", nargs=argparse.REMAINDER)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    root = parser()
    # argparse's REMAINDER does not take options before the first positional (`manage --help`): they come back
    # unrecognised, in order, and lead the management command's arguments.
    args, leading = root.parse_known_args(argv)
    if leading:
        if not hasattr(args, "rest"):
            root.error(f"unrecognized arguments: {' '.join(leading)}")
        args.rest = [*leading, *args.rest]
    args.func(args)


if __name__ == "__main__":
    main()
