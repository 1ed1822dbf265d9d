import importlib

import django.db.models.deletion
from django.db import migrations, models

# Adding the input column makes SQLite rebuild the sessions table, which
# drops its count triggers: they are put back as in 0004.
reinstall_sqlite_triggers = importlib.import_module(
    "agents.migrations.0004_schedule_policies"
).reinstall_sqlite_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0004_schedule_policies"),
    ]

    operations = [
        migrations.AddField(
            model_name="executionsession",
            name="input",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="What the run was asked to work on (a JSON object given to the "
                "runner); a retry gets its run's.",
            ),
        ),
        migrations.CreateModel(
            name="RunRequestKey",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("key", models.CharField(max_length=255)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "agent",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="agents.aiagent",
                    ),
                ),
                (
                    "session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="agents.executionsession",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("agent", "key"), name="run_request_key_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(reinstall_sqlite_triggers, migrations.RunPython.noop),
    ]
