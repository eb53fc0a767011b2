"""AskHandle settings: one file, every difference comes from the environment (.env.example).

Development defaults work out of the box; in production (DEBUG off) SECRET_KEY has no default
and the process refuses to start without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("ASKHANDLE_RUN_DIR", BASE_DIR / ".run"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():  # empty, as in a copied .env.example: the default
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_proxy_header(name: str) -> tuple[str, str] | None:
    """(META key, expected value) from X-Forwarded-Proto, HTTP_X_FORWARDED_PROTO or NAME=value."""
    header, _, expected = os.environ.get(name, "").partition("=")
    header = header.strip().upper().replace("-", "_")
    if not header:
        return None
    if not header.startswith("HTTP_"):
        header = f"HTTP_{header}"
    return header, expected.strip() or "https"


DEBUG = env_bool("DJANGO_DEBUG", True)
if DEBUG:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-insecure-key-change-me-in-production")
else:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
    if not SECRET_KEY:  # no default: fail loudly in production
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("ASKHANDLE_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "accounts",
    "providers",
    "bots",
    "knowledge",
    "training",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "askhandle.static_files.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The dashboard's language: the user's choice, else the browser's (LocaleMiddleware).
    "accounts.middleware.OwnerLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "askhandle.urls"
WSGI_APPLICATION = "askhandle.wsgi.application"
ASGI_APPLICATION = "askhandle.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.workspaces",
            ],
        },
    }
]

# --- Database: PostgreSQL with pgvector, always (no SQLite fallback). ---
# `make run` / `make test` start an embedded server and export DATABASE_URL when it is unset.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@localhost:5432/askhandle"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
DATABASES["default"].setdefault("OPTIONS", {})
# A pool of connections per process (Django's psycopg pool), on in the web server (askhandle.asgi
# sets DATABASE_POOL=1; Celery workers and commands keep a connection per task). Under ASGI each
# request runs its sync code on a thread of its own, so persistent connections (CONN_MAX_AGE)
# would pile up one per thread; without either, every request and answer-pool piece opened a
# new connection. With CONN_HEALTH_CHECKS (below) Django has the pool test a connection as it
# leaves the pool, so one killed while idle (a PostgreSQL restart, pg_terminate_backend) is
# replaced instead of failing a request.
# DATABASE_POOL=0 goes back to a connection per request (or CONN_MAX_AGE, for a pooler in front
# such as PgBouncer). Size: the answer pool's threads plus the requests' own, per process.
DATABASE_POOL = env_bool("DATABASE_POOL", False)
if DATABASE_POOL:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", "20")),
        "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "10")),
    }
# A kept connection is checked (SELECT 1 on its first use in a request or answer-pool piece)
# before it is reused: after a PostgreSQL restart the first request reconnects instead of
# failing with "terminating connection due to administrator command" (chat/tests/test_db_restart.py).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", True)
# pytest sets PYTEST_VERSION. Each test run gets its own database and Redis key prefix, so
# parallel runs (and a running `make run`) on the same servers never see each other's data.
TESTING = "PYTEST_VERSION" in os.environ
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("ASKHANDLE_TEST_DB") or f"test_askhandle_{os.getpid()}"
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (rate limits), Celery broker and results. ---
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# A key prefix keeps parallel test runs (and several installs on one Redis) apart.
REDIS_PREFIX = os.environ.get("ASKHANDLE_REDIS_PREFIX") or (
    f"test{os.getpid()}" if TESTING else "askhandle"
)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_PREFIX,
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins ("failures/seconds", counted in Redis; accounts.throttle): past this many in the
# window that the first failure opens, the account or IP waits until the window ends.
LOGIN_FAILURES_ACCOUNT = os.environ.get("ASKHANDLE_LOGIN_FAILURES_ACCOUNT", "5/900")
LOGIN_FAILURES_IP = os.environ.get("ASKHANDLE_LOGIN_FAILURES_IP", "20/900")
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "bots:list"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en"
# Two languages, independent of each other: the public chat page and widget speak their bot's
# (Bot.language, chat.i18n); the dashboard speaks its user's, chosen in the top bar (kept on
# accounts.Profile) or else the browser's (accounts.middleware). Catalogues:
# locale/<lang>/LC_MESSAGES/django.po, compiled by `make install` (scripts/compile_messages.py).
LANGUAGES = [
    ("en", "English"),
    ("nl", "Nederlands"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The language a signed-out visitor chose on the log-in page (a signed-in user's is on their
# profile) lasts a year, not the browser session.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", RUN_DIR / "staticfiles"))
MEDIA_URL = "media/"
# A test run writes uploads and model weights under its own folder (removed when the run ends,
# conftest.py), never into `make run`'s media or another parallel run's (pytest -n).
MEDIA_ROOT = Path(
    os.environ.get("DJANGO_MEDIA_ROOT")
    or (RUN_DIR / "test-media" / str(os.getpid()) if TESTING else RUN_DIR / "media")
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG  # development serves straight from static/, no collectstatic
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "AskHandle <noreply@askhandle.local>")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Team invitations (accounts.services.invitation_create): days a link stays valid.
INVITATION_DAYS = int(os.environ.get("ASKHANDLE_INVITATION_DAYS") or "7")

# --- HTTPS. Production (DEBUG off) with an https:// ASKHANDLE_SITE_URL redirects to HTTPS and sends
# HSTS by default; a plain-HTTP production-like run (`docker compose up` on localhost) does not,
# since the redirect would go to a port that speaks no TLS. Each can be set on its own.
SERVED_OVER_HTTPS = not DEBUG and SITE_URL.startswith("https://")
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", SERVED_OVER_HTTPS)
SECURE_HSTS_SECONDS = int(
    os.environ.get("DJANGO_SECURE_HSTS_SECONDS") or (31536000 if SERVED_OVER_HTTPS else 0)
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy, the header it sets for HTTPS requests: "HTTP_X_FORWARDED_PROTO"
# (meaning "https") or "NAME=value". Without it the SSL redirect loops. Set it ONLY when the proxy
# always sets or strips that header, or clients could claim HTTPS themselves.
SECURE_PROXY_SSL_HEADER = env_proxy_header("DJANGO_SECURE_PROXY_SSL_HEADER")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Celery ---
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": f"{REDIS_PREFIX}:",
    # A task not acknowledged within this time (worker killed mid-task) is redelivered.
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:"}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "3600"))
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "3300"))
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "knowledge.tasks.*": {"queue": "ingest"},
    "training.tasks.*": {"queue": "training"},
    # A mode comparison may run a tuned local chat model: never in front of an ingestion.
    "chat.tasks.run_evaluation": {"queue": "training"},
    # Provider fine-tuning calls are short HTTP requests: they must not wait behind a LoRA run.
    "training.tasks.submit_chat_tuning": {"queue": "default"},
    "training.tasks.cancel_provider_tuning": {"queue": "default"},
    "training.tasks.poll_chat_tunings": {"queue": "default"},
}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Redis down: a web request that queues a task must not wait on it. Publishing gives up after
# about half a second (askhandle.jobs.ClaimedJobs.send_on_commit leaves the row waiting for beat
# to re-send), and no task subscribes to a result on send: the result backend's reconnect loop
# (20 retries a second apart) was the 19 s a saved FAQ entry waited before its 500.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"] = 2
CELERY_TASK_IGNORE_RESULT = True  # a task that is waited on says so (ignore_result=False)
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS["retry_policy"] = {"max_retries": 2, "interval_max": 0.5}

# --- Model providers (see providers/). Local models are the default: no key, no network. ---
ASKHANDLE_DEFAULT_PROVIDER = os.environ.get("ASKHANDLE_DEFAULT_PROVIDER", "local")
LOCAL_MODEL_CACHE = Path(os.environ.get("ASKHANDLE_MODEL_CACHE", RUN_DIR / "models"))
# torch threads per process: 1 keeps the web server responsive on small machines.
LOCAL_TORCH_THREADS = int(os.environ.get("ASKHANDLE_TORCH_THREADS", "1"))
# The local embedding model's forward pass: "onnx" (ONNX Runtime, the same vectors checked at
# load, 1.2-3x faster and free of the GIL: providers.onnx_encoder) or "torch".
LOCAL_EMBED_ENGINE = os.environ.get("ASKHANDLE_EMBED_ENGINE", "onnx").strip().lower()
# Retrieval tuning (training.retrieval): a per-bot fine-tune of the local embedding model.
RETRIEVAL_TUNING_AUTO = env_bool("ASKHANDLE_RETRIEVAL_TUNING_AUTO", not TESTING)
RETRIEVAL_TUNING_EPOCHS = int(os.environ.get("ASKHANDLE_RETRIEVAL_TUNING_EPOCHS", "3"))
# Copies trained with different seeds whose weights are averaged (a model soup): +0.5 point of
# CLINC150 in-scope accuracy for 3x the training time
# (training.local_training.train_embedding_model).
# The test suite trains one copy per tuning; its own test checks the averaging.
RETRIEVAL_TUNING_RUNS = int(
    os.environ.get("ASKHANDLE_RETRIEVAL_TUNING_RUNS", "1" if TESTING else "3")
)
# Tuning re-embeds every chunk of the bot with the tuned model after each FAQ change: above this
# many chunks that takes too long (tens of minutes on CPU), so bigger bots keep the base model.
RETRIEVAL_TUNING_MAX_CHUNKS = int(os.environ.get("ASKHANDLE_RETRIEVAL_TUNING_MAX_CHUNKS", "10000"))
# Progress is saved every training step and embedding batch (seconds apart); two minutes
# without any means the worker died.
RETRIEVAL_TUNING_STALE_SECONDS = 120
# One core stays free for the web server and the other queues: torch with every core busy
# elsewhere slowed down 5-9x here (docs/decisions.md).
TRAINING_TORCH_THREADS = int(
    os.environ.get("ASKHANDLE_TRAINING_THREADS", str(max(1, (os.cpu_count() or 1) - 1)))
)
TUNED_MODELS_LOADED = int(os.environ.get("ASKHANDLE_TUNED_MODELS_LOADED", "4"))
# Chat fine-tuning (training.chat_tuning): LoRA on the local chat model, or a provider's API.
# A 135M model learns tone in 3 epochs and facts in about 8 (docs/decisions.md: 7 of 9 facts).
CHAT_TUNING_EPOCHS = int(os.environ.get("ASKHANDLE_CHAT_TUNING_EPOCHS", "8"))
CHAT_TUNING_BATCH_SIZE = int(os.environ.get("ASKHANDLE_CHAT_TUNING_BATCH_SIZE", "8"))
CHAT_TUNING_LEARNING_RATE = float(os.environ.get("ASKHANDLE_CHAT_TUNING_LR", "5e-4"))
CHAT_TUNING_LORA_R = int(os.environ.get("ASKHANDLE_CHAT_TUNING_LORA_R", "16"))
CHAT_TUNING_MAX_STEPS = int(os.environ.get("ASKHANDLE_CHAT_TUNING_MAX_STEPS", "0"))  # 0: all
CHAT_TUNING_MAX_TOKENS = int(os.environ.get("ASKHANDLE_CHAT_TUNING_MAX_TOKENS", "512"))
CHAT_TUNING_MIN_EXAMPLES = int(os.environ.get("ASKHANDLE_CHAT_TUNING_MIN_EXAMPLES", "10"))
CHAT_TUNING_CHECKPOINT_STEPS = int(os.environ.get("ASKHANDLE_CHAT_TUNING_CHECKPOINT_STEPS", "10"))
# Every step is a sign of life (7 s at batch 8 on 2 cores); the first one waits for the model
# to load (a minute the very first time, when the GGUF is dequantized).
CHAT_TUNING_STALE_SECONDS = int(os.environ.get("ASKHANDLE_CHAT_TUNING_STALE_SECONDS", "300"))
# The estimate's seconds per step until a local run has finished on this machine (measured:
# batch 8 of short Q/A pairs, 2 cores, docs/decisions.md).
CHAT_TUNING_SECONDS_PER_STEP = float(
    os.environ.get("ASKHANDLE_CHAT_TUNING_SECONDS_PER_STEP", "7.4")
)
OPENAI_FINE_TUNING_MODEL = os.environ.get("OPENAI_FINE_TUNING_MODEL", "gpt-4o-mini-2024-07-18")
# USD per million trained tokens (gpt-4o-mini's published training price), for the estimate.
OPENAI_FINE_TUNING_PRICE_PER_MTOK = float(os.environ.get("OPENAI_FINE_TUNING_PRICE", "3.0"))
# Query embeddings remembered per process (repeated customer questions skip the model); 0 = off.
QUERY_EMBED_CACHE_SIZE = int(os.environ.get("ASKHANDLE_QUERY_EMBED_CACHE", "4096"))
# Public chat and /v1 do their synchronous work (ORM, answer steps, model calls) in one bounded
# thread pool per web process (chat.answering.thread_pool); requests beyond ANSWER_THREADS + ANSWER_QUEUE get
# 503 with Retry-After instead of piling up. 0 runs that work on Django's thread-sensitive
# executor (the in-process test client: its views must share the test's transaction).
# Fewer threads contend less for the GIL with the embedding batch (benchmarks/chat_load.py).
ANSWER_THREADS = int(os.environ.get("ASKHANDLE_ANSWER_THREADS", "0" if TESTING else "8"))
ANSWER_QUEUE = int(os.environ.get("ASKHANDLE_ANSWER_QUEUE", "200"))
# Seconds a pool thread keeps its database connection (the pool is bounded, so connections are
# too, whatever DATABASE_CONN_MAX_AGE says for Django's per-request threads); 0 = per piece.
# With DATABASE_POOL a connection goes back to the pool after every piece (checked on its way
# out again; a connection kept by a thread would escape that check).
ANSWER_CONN_MAX_AGE = int(
    os.environ.get("ASKHANDLE_ANSWER_CONN_MAX_AGE", "0" if DATABASE_POOL else "300")
)
# Concurrent questions are embedded together (providers.batching): a batch waits this long for
# company, holds at most EMBED_BATCH_MAX texts, and at most EMBED_QUEUE_MAX wait (then 503).
EMBED_BATCH_WAIT_MS = float(os.environ.get("ASKHANDLE_EMBED_BATCH_WAIT_MS", "3"))
EMBED_BATCH_MAX = int(os.environ.get("ASKHANDLE_EMBED_BATCH_MAX", "32"))
EMBED_QUEUE_MAX = int(os.environ.get("ASKHANDLE_EMBED_QUEUE_MAX", "256"))
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "") or None
OPENAI_CHAT_MODEL = os.environ.get("OPENAI_CHAT_MODEL", "gpt-4o-mini")
OPENAI_EMBEDDING_MODEL = os.environ.get("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small")
OPENAI_TIMEOUT = float(os.environ.get("OPENAI_TIMEOUT", "60"))
# Prices (USD per million tokens) the mode comparison (chat.evaluation) uses for a provider's
# answers; the defaults are gpt-4o-mini's list prices. Local models cost nothing per answer.
OPENAI_PRICE_INPUT_PER_MTOK = float(os.environ.get("OPENAI_PRICE_INPUT_PER_MTOK", "0.15"))
OPENAI_PRICE_OUTPUT_PER_MTOK = float(os.environ.get("OPENAI_PRICE_OUTPUT_PER_MTOK", "0.60"))
# A mode comparison with no sign of life for this long is re-queued by beat (its worker died).
EVALUATION_STALE_SECONDS = int(os.environ.get("ASKHANDLE_EVALUATION_STALE_SECONDS", "300"))

# --- Knowledge limits ---
KNOWLEDGE_MAX_UPLOAD_BYTES = int(
    os.environ.get("ASKHANDLE_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))
)
# Web pages: private/loopback/link-local addresses are refused unless allowed here (tests, intranets).
KNOWLEDGE_URL_ALLOW_PRIVATE = env_bool("ASKHANDLE_URL_ALLOW_PRIVATE", False)
KNOWLEDGE_URL_ALLOWED_NETWORKS = env_list(
    "ASKHANDLE_URL_ALLOWED_NETWORKS"
)  # CIDRs, e.g. 10.0.0.0/8
KNOWLEDGE_URL_MAX_BYTES = int(os.environ.get("ASKHANDLE_URL_MAX_BYTES", str(5 * 1024 * 1024)))
KNOWLEDGE_URL_TIMEOUT = float(os.environ.get("ASKHANDLE_URL_TIMEOUT", "15"))
# A source PROCESSING with no progress for this long is presumed lost (worker killed) and requeued.
KNOWLEDGE_INGEST_STALE_SECONDS = int(os.environ.get("ASKHANDLE_INGEST_STALE_SECONDS", "600"))
# Fair share of the `ingest` queue: a task embeds for this long, then a source with more to embed
# goes to the back of the queue (its vectors so far are staged), so another tenant's small edit
# waits for at most one slice, not for a whole 100k-row file. 0 runs every source to the end.
KNOWLEDGE_INGEST_SLICE_SECONDS = float(os.environ.get("ASKHANDLE_INGEST_SLICE_SECONDS", "10"))
# Per-bot limits (each message names the limit): FAQ rows in one uploaded file, chunks of one bot
# (every phrasing and passage; 100k chunks searched in 13 ms p95, README), sources of one bot.
KNOWLEDGE_MAX_ROWS_PER_UPLOAD = int(os.environ.get("ASKHANDLE_MAX_ROWS_PER_UPLOAD", "20000"))
# A bot with more chunks than this gets an HNSW index of its own; smaller bots are scanned
# exactly (knowledge.vector_indexes).
KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = int(os.environ.get("ASKHANDLE_EXACT_SEARCH_MAX_CHUNKS", "2000"))
KNOWLEDGE_MAX_CHUNKS_PER_BOT = int(os.environ.get("ASKHANDLE_MAX_CHUNKS_PER_BOT", "100000"))
KNOWLEDGE_MAX_SOURCES_PER_BOT = int(os.environ.get("ASKHANDLE_MAX_SOURCES_PER_BOT", "500"))
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Public chat, widget and API limits (rate limits are "count/seconds", counted in Redis). ---
CHAT_MAX_MESSAGE_CHARS = int(os.environ.get("ASKHANDLE_CHAT_MAX_MESSAGE_CHARS", "1000"))
# /v1: the conversation a client sends (history and question, ~4 characters a token) is trimmed
# to this, oldest turns first; six 2,000-character turns made one local answer 6x slower.
CHAT_MAX_CONTEXT_TOKENS = int(os.environ.get("ASKHANDLE_CHAT_MAX_CONTEXT_TOKENS", "1500"))
RATE_LIMITS_ENABLED = env_bool("ASKHANDLE_RATE_LIMITS", True)  # 0 lifts them (load benchmarks)
RATE_LIMIT_VISITOR = os.environ.get(
    "ASKHANDLE_RATE_LIMIT_VISITOR", "20/60"
)  # per IP + conversation
RATE_LIMIT_IP = os.environ.get("ASKHANDLE_RATE_LIMIT_IP", "60/60")  # per IP, any conversation
RATE_LIMIT_BOT = os.environ.get("ASKHANDLE_RATE_LIMIT_BOT", "600/60")  # per bot, all visitors
RATE_LIMIT_API_KEY = os.environ.get("ASKHANDLE_RATE_LIMIT_API_KEY", "120/60")  # per API key
# /v1 calls with a wrong key, per IP: beyond it the address gets 429 for any key (guessing).
RATE_LIMIT_API_KEY_FAILURES = os.environ.get("ASKHANDLE_RATE_LIMIT_API_KEY_FAILURES", "5/60")
# Reverse proxies whose forwarded header names the client (addresses or CIDR ranges). Empty: the
# header is ignored, the peer address is the client (askhandle/client_ip.py).
TRUSTED_PROXIES = env_list("ASKHANDLE_TRUSTED_PROXIES")
# The header those proxies set (X-Forwarded-For, CF-Connecting-IP or its META key); read only
# from them. Blank with no trusted proxies, so a header anyone can send never becomes the
# address per-IP limits count (chat and login throttle).
_client_ip_header = os.environ.get("ASKHANDLE_CLIENT_IP_HEADER", "").strip().upper()
_client_ip_header = _client_ip_header.replace("-", "_") or "X_FORWARDED_FOR"
CLIENT_IP_HEADER = (
    (_client_ip_header if _client_ip_header.startswith("HTTP_") else f"HTTP_{_client_ip_header}")
    if TRUSTED_PROXIES
    else ""
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # DEBUG logs every query-embedding batch (size, time): benchmarks/chat_load.py.
        "providers.batching": {"level": os.environ.get("ASKHANDLE_BATCH_LOG_LEVEL", "INFO")},
    },
}

CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "bots.tasks.worker_heartbeat", "schedule": 30.0},
    "knowledge-recover-stuck": {"task": "knowledge.tasks.recover_stuck_sources", "schedule": 60.0},
    "knowledge-recover-reembeddings": {
        "task": "knowledge.tasks.recover_stuck_reembeddings",
        "schedule": 60.0,
    },
    "training-recover-stuck": {"task": "training.tasks.recover_stuck_tunings", "schedule": 60.0},
    "training-recover-chat-tunings": {
        "task": "training.tasks.recover_stuck_chat_tunings",
        "schedule": 60.0,
    },
    "training-poll-chat-tunings": {"task": "training.tasks.poll_chat_tunings", "schedule": 30.0},
    "chat-recover-evaluations": {"task": "chat.tasks.recover_stuck_evaluations", "schedule": 60.0},
    # Catches a per-bot vector index sync lost while the broker was down (knowledge.vector_indexes).
    "knowledge-sync-vector-indexes": {
        "task": "knowledge.tasks.sync_all_vector_indexes",
        "schedule": 3600.0,
    },
}
