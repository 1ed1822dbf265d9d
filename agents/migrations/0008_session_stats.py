# The index run statistics read a window of an agent's finished runs from.
# Building it takes a write lock on the sessions table for as long as the
# build lasts (about a second per million sessions).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0007_audit"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="executionsession",
            index=models.Index(
                condition=models.Q(("status__in", ["SUCCEEDED", "FAILED", "CANCELLED"])),
                fields=["agent", "completed_at", "status", "duration_ms"],
                name="session_finished",
            ),
        ),
    ]
