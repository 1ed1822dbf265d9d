"""Beat's scheduler: django-celery-beat's DatabaseScheduler plus two duties.

It reports in on every tick (the heartbeat behind ``isRunning``) and tells
each dispatch which cron slot it is for, so a run keeps its slot even when
the message waits in the queue past the minute.
"""

from __future__ import annotations

from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from scheduling.heartbeat import record_beat_heartbeat
from scheduling.services import DISPATCH_TASK


class AgentScheduler(DatabaseScheduler):
    def tick(self, *args, **kwargs):
        record_beat_heartbeat()
        return super().tick(*args, **kwargs)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if entry.task == DISPATCH_TASK:
            slot = timezone.now().replace(second=0, microsecond=0)
            entry.kwargs = {**(entry.kwargs or {}), "scheduled_for": slot.isoformat()}
        return super().apply_async(entry, producer, advance, **kwargs)
