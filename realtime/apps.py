from __future__ import annotations

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from realtime.signals import close_sockets_of_session

        user_logged_out.connect(close_sockets_of_session, dispatch_uid="realtime.close_sockets")
