"""Settings for the throughput benchmark's peers: NeonHub's own settings plus
django-q2 and django-celery-results, so the peers' rows live in the same
PostgreSQL database as ours. Only the benchmark uses this module; the app's
own processes in the same run keep ``neonhub.settings``.
"""

import os

from neonhub.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "django_q", "django_celery_results"]  # noqa: F405

# django-q2 as the baseline sets it up: Redis broker, four worker
# processes, a Success row for every task (save_limit 0 keeps all of them).
Q_CLUSTER = {
    "name": f"bench-{os.environ.get('CELERY_QUEUE', 'peers')}",
    "workers": 4,
    "redis": REDIS_URL,  # noqa: F405
    "save_limit": 0,
    "timeout": 60,
    "retry": 120,
    "catch_up": False,
}

# Celery with django-celery-results: a STARTED and a SUCCESS row per task.
CELERY_RESULT_BACKEND = "django-db"
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXTENDED = True
