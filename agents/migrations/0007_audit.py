import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0006_session_logs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, help_text="When the change was made."
                    ),
                ),
                (
                    "actor_name",
                    models.CharField(
                        help_text='The user\'s name when they made the change, or "system".',
                        max_length=150,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("API", "API"),
                            ("ADMIN", "Admin"),
                            ("BEAT_ADMIN", "Beat admin"),
                            ("SYSTEM", "System"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "action",
                    models.CharField(
                        help_text="What was done, e.g. schedule.paused.", max_length=64
                    ),
                ),
                (
                    "changes",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="Each changed field: [old, new], as the API shows it.",
                    ),
                ),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        help_text="The user who made the change; empty for the system.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "agent",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="agents.aiagent",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "ordering": ["-at", "-id"],
                "indexes": [models.Index(fields=["agent", "-at", "-id"], name="audit_history")],
            },
        ),
    ]
