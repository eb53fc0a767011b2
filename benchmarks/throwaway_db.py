"""A throwaway database for a benchmark: created and migrated on the configured server, dropped
afterwards, so figures never touch (or depend on) a real installation's data."""

from __future__ import annotations

import contextlib
import os


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
    import django

    django.setup()


@contextlib.contextmanager
def throwaway_database(prefix: str = "askhandle_bench"):
    """Switch Django's default connection to a fresh, migrated `<prefix>_<pid>` and drop it after.

    Uses Django's test-database machinery (create, migrate, switch back, drop), which works
    whether or not another benchmark already used the connection in this process.
    """
    setup_django()
    from django.conf import settings
    from django.db import connection

    settings.DEBUG = False  # no per-query SQL logging: measure what production runs
    # No tuning jobs sent to the shared Redis for a worker of the real installation to find:
    # benchmarks that tune (faq_bench) run the job themselves.
    settings.RETRIEVAL_TUNING_AUTO = False
    # Tasks the benchmark's own changes send (a calibration after a tuning deploy, say) run here,
    # inline, against this database: on the shared broker a real worker would pick them up and
    # apply them to the real installation's rows with the same ids.
    from celery import current_app

    current_app.conf.task_always_eager = True

    name = f"{prefix}_{os.getpid()}"
    connection.settings_dict.setdefault("TEST", {})
    previous_test_name = connection.settings_dict["TEST"].get("NAME")
    connection.settings_dict["TEST"]["NAME"] = name
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        connection.settings_dict["TEST"]["NAME"] = previous_test_name


def percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if len(values) else float("nan")
