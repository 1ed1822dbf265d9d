"""The peers' no-op tasks, in a module of their own so the peers' workers
import nothing of the benchmark itself."""

from celery import shared_task

PEER_CELERY_TASK = "bench.peer_noop"


@shared_task(name=PEER_CELERY_TASK, ignore_result=False)
def celery_noop() -> None:
    """Celery + django-celery-results: stored as STARTED, then SUCCESS."""


def q_noop() -> None:
    """django-q2: stored as a Success row."""
