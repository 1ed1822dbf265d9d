from __future__ import annotations

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save, pre_save

        from realtime import signals

        user_logged_out.connect(
            signals.close_sockets_of_session, dispatch_uid="realtime.close_sockets"
        )
        user_model = get_user_model()
        pre_save.connect(
            signals.note_rights_before_save,
            sender=user_model,
            dispatch_uid="realtime.note_rights_before_save",
        )
        post_save.connect(
            signals.close_sockets_if_rights_lost,
            sender=user_model,
            dispatch_uid="realtime.close_sockets_if_rights_lost",
        )
        post_delete.connect(
            signals.close_sockets_of_deleted_user,
            sender=user_model,
            dispatch_uid="realtime.close_sockets_of_deleted_user",
        )
        from observability.collector import registry
        from realtime.metrics import WebSocketCollector

        registry.register(WebSocketCollector())
