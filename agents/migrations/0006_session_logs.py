import importlib

import django.db.models.deletion
from django.db import migrations, models

# The new column makes SQLite rebuild the sessions table, which drops its
# count triggers: they are put back as in 0004.
reinstall_sqlite_triggers = importlib.import_module(
    "agents.migrations.0004_schedule_policies"
).reinstall_sqlite_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0005_run_input"),
    ]

    operations = [
        migrations.AddField(
            model_name="executionsession",
            name="log_truncated",
            field=models.BooleanField(
                default=False,
                help_text="The run wrote more log than a session keeps; the later lines were "
                "dropped.",
            ),
        ),
        migrations.CreateModel(
            name="SessionLogLine",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "seq",
                    models.PositiveIntegerField(
                        help_text="The line's number in its session, from 1."
                    ),
                ),
                ("at", models.DateTimeField(help_text="When the runner logged it.")),
                (
                    "level",
                    models.CharField(
                        choices=[
                            ("DEBUG", "Debug"),
                            ("INFO", "Info"),
                            ("WARNING", "Warning"),
                            ("ERROR", "Error"),
                        ],
                        default="INFO",
                        max_length=7,
                    ),
                ),
                ("message", models.TextField()),
                (
                    "session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="log_lines",
                        to="agents.executionsession",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("session", "seq"), name="session_log_seq")
                ],
            },
        ),
        migrations.RunPython(reinstall_sqlite_triggers, migrations.RunPython.noop),
    ]
