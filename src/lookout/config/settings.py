"""Django settings, from the environment only (see the configuration table in README.md)."""

from pathlib import Path
from typing import Any, TypedDict

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from lookout.config.env import env_bool, env_cidrs, env_float, env_int, env_list, env_regions, env_required, env_str
from lookout.environment import broker_tls

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

_INSECURE_KEY_PREFIX = "django-insecure-"


def _secret_key() -> str:
    key = env_str("SECRET_KEY") or ""
    if DEBUG:
        return key or _INSECURE_KEY_PREFIX + "debug-only-key-never-use-in-production"
    # Same criteria as Django's security.W009 check, but fatal: a guessable key forges sessions.
    if not key:
        raise ImproperlyConfigured("SECRET_KEY is not set (or SECRET_KEY_FILE); it is required when DEBUG is off")
    if len(key) < 50 or len(set(key)) < 5 or key.startswith(_INSECURE_KEY_PREFIX):
        raise ImproperlyConfigured(
            "SECRET_KEY is insecure: use at least 50 random characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
        )
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "lookout.core",
    "lookout.accounts",
    "lookout.monitors",
    "lookout.scheduling",
    "lookout.observability",
    "lookout.alerting",
    "lookout.regions",
    "lookout.stats",
]

MIDDLEWARE = [
    # First: health and metrics answer before host validation, so kubelet probes by pod IP work.
    "lookout.observability.middleware.OperationalEndpointsMiddleware",
    "lookout.observability.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The database down: a 503 with Retry-After in the error format instead of a 500 (process_exception).
    "lookout.api.middleware.DatabaseUnavailableMiddleware",
]
# A CSRF failure outside DRF (DRF's own views answer theirs) in the API's error format, not Django's HTML page.
CSRF_FAILURE_VIEW = "lookout.api.error_views.csrf_failure"

ROOT_URLCONF = "lookout.config.urls"
WSGI_APPLICATION = "lookout.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dj_database_url.DBConfig:
    url = env_required("DATABASE_URL", "e.g. postgres://user:password@host:5432/lookout (or run `lookout dev`)")
    database = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the API read while a worker writes; IMMEDIATE avoids "database is locked" on upgrade.
        database["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        database["CONN_MAX_AGE"] = 0
        return database
    # A database that silently drops packets (rather than refusing) must not hang a query for the kernel's two
    # hours: connect within 5 s, notice a dead peer within ~1 min. A URL's own query parameters take precedence.
    options = database.setdefault("OPTIONS", {})
    for key, value in {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                       "keepalives_count": 3, "tcp_user_timeout": 60_000}.items():
        options.setdefault(key, value)
    pool_size = env_int("LOOKOUT_DB_POOL_SIZE", 0, minimum=0)
    if pool_size:
        # Celery closes Django's connection at every task start and end: with a pool, close() hands it back
        # instead of tearing down a Postgres backend twice per probe. Pooling excludes persistent connections.
        database["CONN_MAX_AGE"] = 0
        # Health checks on: Django then gives the pool check=ConnectionPool.check_connection, so a pooled connection
        # that died meanwhile (database restarted) is replaced before it is handed out.
        database["CONN_HEALTH_CHECKS"] = True
        options["pool"] = {"min_size": 0, "max_size": pool_size, "timeout": 30}
    return database


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    # Shared by every process and replica. (API throttling has counters of its own: lookout.core.rate_counters.)
    "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "lookout_cache"},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_str("LOOKOUT_STATIC_ROOT") or None
# Serve app static files straight from the package: no collectstatic step, read-only root filesystems work.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False

REST_FRAMEWORK = {
    # Token first: DRF answers anonymous requests with the first class's challenge, so 401 not 403. Lookout's own
    # hashed, scoped tokens (lookout.accounts); DRF's authtoken app is gone (accounts' migration 0002).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "lookout.accounts.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only: a form or multipart body is a 415. (A schema offering forms beside JSON makes generated
    # clients send forms, which cannot carry nulls, lists or nested objects.)
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "lookout.api.pagination.Pagination",
    # Counted in the database (fixed windows, one upsert per request), so limits hold across workers and replicas.
    "DEFAULT_THROTTLE_CLASSES": ["lookout.api.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("LOOKOUT_USER_RATE", "1200/minute"),
        "login": env_str("LOOKOUT_LOGIN_RATE", "10/minute"),
        "push": env_str("LOOKOUT_PUSH_RATE", "60/minute"),
    },
    # Every operation's statuses and error bodies (lookout.api.schema).
    "DEFAULT_SCHEMA_CLASS": "lookout.api.schema.AutoSchema",
    # Domain errors become HTTP here, and every error body has one format (lookout.api.errors).
    "EXCEPTION_HANDLER": "lookout.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Lookout API",
    "DESCRIPTION": "Uptime monitors, their schedules and probe results.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The status of a region (monitor detail regions_status) is not the monitor's: named apart, so StatusEnum stays.
    "ENUM_NAME_OVERRIDES": {"TokenScopeEnum": "lookout.accounts.models.TokenScope",
                            "StatusEnum": "lookout.monitors.models.MonitorStatus",
                            "RegionStatusEnum": [("up", "up"), ("down", "down"), ("unknown", "unknown")]},
    # Request components apart from response ones: a request model holds no read-only field (a client never has
    # to invent an id to create something), a response model no write-only one.
    "COMPONENT_SPLIT_REQUEST": True,
}

# Lookout
LOOKOUT_MIN_INTERVAL = env_int("LOOKOUT_MIN_INTERVAL", 10, minimum=1)
LOOKOUT_METRICS_TOKEN = env_str("LOOKOUT_METRICS_TOKEN") or ""
LOOKOUT_LOG_FORMAT = (env_str("LOOKOUT_LOG_FORMAT", "text") or "text").lower()
if LOOKOUT_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOOKOUT_LOG_FORMAT={LOOKOUT_LOG_FORMAT!r} must be 'text' or 'json'")
LOOKOUT_PROBE_QUEUE = "probes"
# metrics (helper "metrics", docs/metrics.md): per-monitor series beyond the default 5 for every monitor
# (status, phases, incidents, regions, or all; a monitor opts in alone through its `metrics`), how often beat's
# snapshot process re-reads the monitors table, and into how many shards it splits the per-monitor series
# (/metrics?shard=i&of=N; 1: one scrape target holds them all).
LOOKOUT_MONITOR_METRICS_DETAIL = env_list("LOOKOUT_MONITOR_METRICS_DETAIL")
LOOKOUT_METRICS_CACHE_SECONDS = env_int("LOOKOUT_METRICS_CACHE_SECONDS", 10, minimum=1)
LOOKOUT_METRICS_SHARDS = env_int("LOOKOUT_METRICS_SHARDS", 1, minimum=1)
# Regions (docs/regions.md): where monitors are probed from. The first is the home region: its workers probe from
# the `probes` queue and record every region's results (arriving on LOOKOUT_RESULTS_QUEUE); another region's runs
# go to `probes.<region>`, for its workers or database-less agents.
LOOKOUT_REGIONS = env_regions("LOOKOUT_REGIONS")
LOOKOUT_HOME_REGION = LOOKOUT_REGIONS[0]
LOOKOUT_RESULTS_QUEUE = "results"
# beat helper (issue 18): monitors' probe runs travel in batch messages of at most LOOKOUT_RUN_BATCH_SIZE runs
# (same route, region, due second and expiry second); beat waits up to LOOKOUT_BEAT_LINGER_SECONDS for a batch
# to fill (0: sends at once), so at low rates runs of neighbouring moments still share a message.
LOOKOUT_RUN_BATCH_SIZE = env_int("LOOKOUT_RUN_BATCH_SIZE", 100, minimum=1)
LOOKOUT_BEAT_LINGER_SECONDS = env_float("LOOKOUT_BEAT_LINGER_SECONDS", 0.1, minimum=0, maximum=1)
# The region this process probes from (`lookout worker --region X`): its metrics' `region` label, and the region
# a home worker's heartbeat names.
LOOKOUT_REGION = env_str("LOOKOUT_REGION") or LOOKOUT_HOME_REGION
if LOOKOUT_REGION not in LOOKOUT_REGIONS:
    raise ImproperlyConfigured(f"LOOKOUT_REGION={LOOKOUT_REGION!r} is not one of LOOKOUT_REGIONS "
                               f"({', '.join(LOOKOUT_REGIONS)})")
# A region whose failure share over the window is at least MIN_PERCENT, and MARGIN points above every other region's,
# with MIN_RESULTS results at least, is suspect: its votes are not counted (lookout.regions.suspects).
LOOKOUT_REGION_SUSPECT_MIN_PERCENT = env_int("LOOKOUT_REGION_SUSPECT_MIN_PERCENT", 50, minimum=1)
LOOKOUT_REGION_SUSPECT_MARGIN_PERCENT = env_int("LOOKOUT_REGION_SUSPECT_MARGIN_PERCENT", 30, minimum=1)
LOOKOUT_REGION_SUSPECT_MIN_RESULTS = env_int("LOOKOUT_REGION_SUSPECT_MIN_RESULTS", 20, minimum=1)
LOOKOUT_REGION_WINDOW_SECONDS = env_int("LOOKOUT_REGION_WINDOW_SECONDS", 300, minimum=10)
# --- worker (issue 18): batched runs (lookout.probes.tasks.probe_batch, lookout.agent.probe_batch) ---
# Probes running at once in one worker process, whichever batch messages they came in: what bounds its memory
# (bench/README.md, "Worker end to end": ~24 KiB per probe in flight). A batch waits for a free slot per run.
LOOKOUT_WORKER_PROBES_IN_FLIGHT = env_int("LOOKOUT_WORKER_PROBES_IN_FLIGHT", 500, minimum=1)
# A batch of fewer than 100 results waits up to this long for more before it is written: at a light load one
# write then serves several messages (each write costs ~1-3.5 ms of CPU, more than its probes at 10 % load). It
# delays the acknowledgement and a state change (an alert) by as much; 0 writes at once.
LOOKOUT_WORKER_WRITE_LINGER_SECONDS = env_float("LOOKOUT_WORKER_WRITE_LINGER_SECONDS", 0.5, minimum=0, maximum=5)
LOOKOUT_ENCRYPTION_KEYS = env_list("LOOKOUT_ENCRYPTION_KEY")
# Safe targets: monitors may not reach private, loopback or link-local addresses unless opened up here.
LOOKOUT_ALLOW_PRIVATE_TARGETS = env_bool("LOOKOUT_ALLOW_PRIVATE_TARGETS", False)
LOOKOUT_TARGET_ALLOWLIST = env_cidrs("LOOKOUT_TARGET_ALLOWLIST")
LOOKOUT_PUSH_SWEEP_SECONDS = env_int("LOOKOUT_PUSH_SWEEP_SECONDS", 10, minimum=1)
# Where links in alerts point (https://lookout.example.com); empty: links are API paths only.
LOOKOUT_BASE_URL = (env_str("LOOKOUT_BASE_URL") or "").rstrip("/")

# Alert delivery (lookout.alerting): tasks on their own queue, so probes never wait behind deliveries.
LOOKOUT_ALERT_QUEUE = "alerts"
LOOKOUT_ALERT_TIMEOUT_SECONDS = env_int("LOOKOUT_ALERT_TIMEOUT_SECONDS", 10, minimum=1)
# A claimed delivery whose worker died is picked up again once its lease ran out: longer than any send.
LOOKOUT_ALERT_LEASE_SECONDS = env_int("LOOKOUT_ALERT_LEASE_SECONDS", 60, minimum=2)
if LOOKOUT_ALERT_LEASE_SECONDS <= LOOKOUT_ALERT_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        f"LOOKOUT_ALERT_LEASE_SECONDS={LOOKOUT_ALERT_LEASE_SECONDS} must exceed LOOKOUT_ALERT_TIMEOUT_SECONDS="
        f"{LOOKOUT_ALERT_TIMEOUT_SECONDS}: a live delivery must never lose its lease to a second sender"
    )
LOOKOUT_ALERT_RETRY_BASE_SECONDS = env_int("LOOKOUT_ALERT_RETRY_BASE_SECONDS", 10, minimum=1)
LOOKOUT_ALERT_RETRY_MAX_SECONDS = env_int("LOOKOUT_ALERT_RETRY_MAX_SECONDS", 3600, minimum=1)
LOOKOUT_ALERT_MAX_ATTEMPTS = env_int("LOOKOUT_ALERT_MAX_ATTEMPTS", 12, minimum=1)
LOOKOUT_ALERT_SWEEP_SECONDS = env_int("LOOKOUT_ALERT_SWEEP_SECONDS", 5, minimum=1)
# Mass-failure guard: this many monitors, and this share of those probed within the window, failing at once
# look like Lookout's own network or DNS rather than the world: per-monitor alerts are held meanwhile.
LOOKOUT_GUARD_ENABLED = env_bool("LOOKOUT_GUARD_ENABLED", True)
LOOKOUT_GUARD_MIN_FAILING = env_int("LOOKOUT_GUARD_MIN_FAILING", 10, minimum=1)
LOOKOUT_GUARD_FAILING_PERCENT = env_int("LOOKOUT_GUARD_FAILING_PERCENT", 50, minimum=1)
if LOOKOUT_GUARD_FAILING_PERCENT > 100:
    raise ImproperlyConfigured(f"LOOKOUT_GUARD_FAILING_PERCENT={LOOKOUT_GUARD_FAILING_PERCENT} must be 1 to 100")
LOOKOUT_GUARD_WINDOW_SECONDS = env_int("LOOKOUT_GUARD_WINDOW_SECONDS", 300, minimum=1)
LOOKOUT_GUARD_MAX_HOLD_SECONDS = env_int("LOOKOUT_GUARD_MAX_HOLD_SECONDS", 900, minimum=1)

# Statistics and retention (lookout.stats).
LOOKOUT_RESULTS_RETENTION_DAYS = env_int("LOOKOUT_RESULTS_RETENTION_DAYS", 30, minimum=1)
LOOKOUT_ROLLUP_RETENTION_DAYS = env_int("LOOKOUT_ROLLUP_RETENTION_DAYS", 400, minimum=1)
LOOKOUT_ROLLUP_SECONDS = env_int("LOOKOUT_ROLLUP_SECONDS", 300, minimum=1)
LOOKOUT_PRUNE_SECONDS = env_int("LOOKOUT_PRUNE_SECONDS", 3600, minimum=1)
LOOKOUT_PRUNE_BATCH_SIZE = env_int("LOOKOUT_PRUNE_BATCH_SIZE", 5000, minimum=1)
# rollups (issue 18): hourly rollups are kept this long (daily ones LOOKOUT_ROLLUP_RETENTION_DAYS); beyond it a
# window's partial first day is read from its whole day's rollup. 92: the stats API's windows (up to 90 days) stay
# exact to the hour.
LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS = env_int("LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS", 92, minimum=1)
# Hours before the last rolled one that each rollup run checks for late results (and rolls up again if any).
LOOKOUT_ROLLUP_LATE_HOURS = env_int("LOOKOUT_ROLLUP_LATE_HOURS", 3, minimum=0)
# PostgreSQL work_mem of the rollup's statements: its grouping of an hour needs ~1 KB per monitor and region.
LOOKOUT_ROLLUP_WORK_MEM = env_str("LOOKOUT_ROLLUP_WORK_MEM") or "1GB"

# Email alerts: Django's standard EMAIL_* settings (every one may come from NAME_FILE, e.g. the password).
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set at most one")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", LOOKOUT_ALERT_TIMEOUT_SECONDS, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "Lookout <lookout@localhost>"

# Built-in maintenance schedules. `lookout migrate` creates a PeriodicTask row for each one that does not exist
# yet and never changes an existing row: from then on the row is data, changed through /api/v1/periodic-tasks/
# (or the admin), and survives restarts. (Entries in CELERY_BEAT_SCHEDULE would be rewritten by beat at every
# start, undoing such changes; so there are none.) Their task names are the periodic-task API's allowlist.
class PeriodicTaskSeed(TypedDict):
    task: str
    every: int  # seconds; also the run's expiry
    description: str


LOOKOUT_PERIODIC_TASKS: dict[str, PeriodicTaskSeed] = {
    "lookout.push-sweep": {"task": "lookout.monitors.tasks.push_sweep", "every": LOOKOUT_PUSH_SWEEP_SECONDS,
                           "description": "Push monitors whose heartbeat is overdue go down."},
    "lookout.alert-sweep": {"task": "lookout.alerting.tasks.alerts_sweep", "every": LOOKOUT_ALERT_SWEEP_SECONDS,
                            "description": "Maintenance-window status, the mass-failure guard, due and retried "
                                           "alert deliveries, deliveries whose lease ran out."},
    "lookout.regions-sweep": {"task": "lookout.regions.tasks.regions_sweep", "every": LOOKOUT_ALERT_SWEEP_SECONDS,
                              "description": "Regions whose failure share stands far above the others' become "
                                             "suspect (their votes not counted), and recover."},
    "lookout.stats-rollup": {"task": "lookout.stats.tasks.rollup", "every": LOOKOUT_ROLLUP_SECONDS,
                             "description": "Hourly (and daily) per-monitor rollups of finished hours (days)."},
    "lookout.results-prune": {"task": "lookout.stats.tasks.results_prune", "every": LOOKOUT_PRUNE_SECONDS,
                              "description": "Raw results older than LOOKOUT_RESULTS_RETENTION_DAYS."},
    "lookout.rollups-prune": {"task": "lookout.stats.tasks.rollups_prune", "every": LOOKOUT_PRUNE_SECONDS,
                              "description": "Rollups, incidents and alert history older than "
                                             "LOOKOUT_ROLLUP_RETENTION_DAYS."},
    # Celery's own: stock schedulers install it at every start; Lookout's seeds it once, like the others.
    "celery.backend_cleanup": {"task": "celery.backend_cleanup", "every": LOOKOUT_PRUNE_SECONDS,
                               "description": "Celery task results (check-now) older than a day."},
}

# Celery (read by lookout.config.celery_app with namespace CELERY_)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or "django-db"
# Celery keeps a backend per thread unless told it is thread-safe, and under gevent every task is a thread of
# its own: each probe built a new one (~5 % of a probe's CPU, measured). The database backend holds no
# connection itself (each greenlet uses its own Django one), so one per process serves every task.
CELERY_RESULT_BACKEND_THREAD_SAFE = CELERY_RESULT_BACKEND == "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# A probe is an idempotent read: acknowledge after it ran, so a worker killed mid-probe loses nothing.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Expiring probe messages must not sit in one busy worker's prefetch buffer.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Imported by worker and beat once Django is set up, before worker_init/beat_init: their metrics port and counts.
CELERY_IMPORTS = ["lookout.process_signals"]
CELERY_TASK_ROUTES = {
    "lookout.probes.tasks.*": {"queue": LOOKOUT_PROBE_QUEUE},
    "lookout.probes.remote.*": {"queue": LOOKOUT_RESULTS_QUEUE},
    "lookout.alerting.tasks.*": {"queue": LOOKOUT_ALERT_QUEUE},
    "lookout.regions.tasks.*": {"queue": LOOKOUT_ALERT_QUEUE},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_USE_SSL = broker_tls(CELERY_BROKER_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True} if (CELERY_BROKER_URL or "").startswith("amqp") else {}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's consumer, reporting each turn of its loop: the worker's /healthz tells "stuck" from "reconnecting".
CELERY_WORKER_CONSUMER = "lookout.observability.liveness:LookoutConsumer"
CELERY_BEAT_SCHEDULER = "lookout.scheduling.scheduler:LookoutScheduler"
# Empty on purpose: beat rewrites these rows at every start. Lookout's own schedules (including the push sweep)
# are LOOKOUT_PERIODIC_TASKS above, created once by `lookout migrate` and then owned by the periodic-task API.
CELERY_BEAT_SCHEDULE: dict[str, Any] = {}
# Beat looks for changed schedules at least this often: a monitor change takes effect within ~1 s.
CELERY_BEAT_MAX_LOOP_INTERVAL = 1
DJANGO_CELERY_BEAT_TZ_AWARE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "lookout.observability.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOOKOUT_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOOKOUT_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
