from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from observability.heartbeats import start_worker_heartbeat, stop_worker_heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neonhub.settings")

app = Celery("neonhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker reports in while it runs, so /healthz and /metrics can count it.
worker_ready.connect(start_worker_heartbeat, dispatch_uid="neonhub-worker-heartbeat-start")
worker_shutdown.connect(stop_worker_heartbeat, dispatch_uid="neonhub-worker-heartbeat-stop")
