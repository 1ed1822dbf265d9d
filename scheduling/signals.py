"""The one place where beat-admin edits flow back onto agents.

Agents' schedules are normally written by ``scheduling.services``; an
operator may still edit the PeriodicTask or CrontabSchedule directly in
django-celery-beat's admin, and the agent must follow.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from scheduling import services


@receiver(post_save, sender=PeriodicTask, dispatch_uid="mirror-periodic-task")
def periodic_task_saved(sender, instance: PeriodicTask, **kwargs) -> None:
    if not services.is_writing_beat_rows():
        services.mirror_beat_edits([instance])


@receiver(post_save, sender=CrontabSchedule, dispatch_uid="mirror-crontab")
def crontab_saved(sender, instance: CrontabSchedule, **kwargs) -> None:
    if services.is_writing_beat_rows():
        return
    services.mirror_beat_edits(instance.periodictask_set.all())


@receiver(post_delete, sender=PeriodicTask, dispatch_uid="forget-periodic-task")
def periodic_task_deleted(sender, instance: PeriodicTask, **kwargs) -> None:
    if services.is_writing_beat_rows() or not instance.name.startswith(
        services.PERIODIC_TASK_PREFIX
    ):
        return
    services.forget_deleted_task(instance.name.removeprefix(services.PERIODIC_TASK_PREFIX))
