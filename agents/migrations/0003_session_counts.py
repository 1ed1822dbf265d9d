"""Each agent's session count, kept exact by the database.

``agents_sessioncount`` holds one row per agent that has had a session.
Triggers on ``agents_executionsession`` keep it in step with every insert,
delete, truncate and change of agent, in the same transaction as the change,
whoever makes it (the ORM, ``bulk_create(ignore_conflicts=True)``, raw SQL):

* PostgreSQL: statement-level triggers with transition tables, so a bulk
  insert costs one grouped upsert however many rows it wrote, and only the
  rows actually inserted (``ON CONFLICT DO NOTHING`` skips) are counted;
* SQLite: row-level triggers with an upsert.

On another vendor nothing is installed and readers count instead.

To recount by hand (the counts are only wrong if the triggers were dropped),
call ``count_sessions(connection)`` from this module, or run its two
statements in a transaction that first takes
``LOCK TABLE agents_executionsession IN SHARE MODE`` on PostgreSQL.

SQLite drops a table's triggers when Django rebuilds the table, which it does
for most field changes: a later migration that alters
``agents_executionsession`` on SQLite must run ``install_triggers`` again and
recount.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models, transaction

# A count row is locked from the statement that changes it until the commit.
# Each function first locks the agents' own rows, in id order, and only then
# their count rows, so every transaction takes the two in one order: agent,
# then count. Without that, a transaction that updates an agent and then
# queues a session for it (a failed run queueing its retry) deadlocks with one
# that inserts sessions and then updates their agents (beat's bulk dispatch).
# Beat updates every agent it dispatches anyway; taking those locks a moment
# earlier costs it little.
POSTGRESQL_INSTALL = [
    """
    CREATE FUNCTION agents_sessioncount_add() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM agents_aiagent
        WHERE id IN (SELECT agent_id FROM inserted_sessions)
        ORDER BY id FOR NO KEY UPDATE;
        INSERT INTO agents_sessioncount AS c (agent_id, total)
        SELECT agent_id, count(*) FROM inserted_sessions GROUP BY agent_id ORDER BY agent_id
        ON CONFLICT (agent_id) DO UPDATE SET total = c.total + excluded.total;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER agents_sessioncount_add
    AFTER INSERT ON agents_executionsession
    REFERENCING NEW TABLE AS inserted_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION agents_sessioncount_add()
    """,
    # Only ever an update: deleting an agent deletes its sessions and its
    # count row in either order, and a row must not come back for an agent
    # that is going away.
    """
    CREATE FUNCTION agents_sessioncount_subtract() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM agents_aiagent
        WHERE id IN (SELECT agent_id FROM deleted_sessions)
        ORDER BY id FOR NO KEY UPDATE;
        UPDATE agents_sessioncount AS c SET total = c.total - d.removed
        FROM (SELECT agent_id, count(*) AS removed FROM deleted_sessions GROUP BY agent_id) AS d
        WHERE c.agent_id = d.agent_id;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER agents_sessioncount_subtract
    AFTER DELETE ON agents_executionsession
    REFERENCING OLD TABLE AS deleted_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION agents_sessioncount_subtract()
    """,
    # Sessions never change agent in this application; the trigger keeps the
    # count exact if someone does it by hand. PostgreSQL allows no transition
    # table on a column-specific trigger, so it is per row, and the WHEN
    # clause keeps ordinary updates from queueing it at all.
    """
    CREATE FUNCTION agents_sessioncount_move() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM agents_aiagent
        WHERE id IN (OLD.agent_id, NEW.agent_id)
        ORDER BY id FOR NO KEY UPDATE;
        UPDATE agents_sessioncount SET total = total - 1 WHERE agent_id = OLD.agent_id;
        INSERT INTO agents_sessioncount AS c (agent_id, total) VALUES (NEW.agent_id, 1)
        ON CONFLICT (agent_id) DO UPDATE SET total = c.total + 1;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER agents_sessioncount_move
    AFTER UPDATE OF agent_id ON agents_executionsession
    FOR EACH ROW WHEN (OLD.agent_id IS DISTINCT FROM NEW.agent_id)
    EXECUTE FUNCTION agents_sessioncount_move()
    """,
    # TRUNCATE fires no delete trigger. Django's flush truncates this table in
    # the same statement; DELETE, not TRUNCATE, so the trigger never needs a
    # lock the statement that fired it may not be able to take.
    """
    CREATE FUNCTION agents_sessioncount_clear() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM agents_sessioncount;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER agents_sessioncount_clear
    AFTER TRUNCATE ON agents_executionsession
    FOR EACH STATEMENT EXECUTE FUNCTION agents_sessioncount_clear()
    """,
]

POSTGRESQL_REMOVE = [
    *(
        f"DROP TRIGGER IF EXISTS agents_sessioncount_{name} ON agents_executionsession"
        for name in ("add", "subtract", "move", "clear")
    ),
    *(
        f"DROP FUNCTION IF EXISTS agents_sessioncount_{name}()"
        for name in ("add", "subtract", "move", "clear")
    ),
]

# SQLite has no statement-level triggers; a row trigger's upsert is cheap
# there. INSERT OR IGNORE fires it only for the rows it inserted, and
# DELETE FROM (SQLite's truncate) fires the delete trigger for every row.
SQLITE_INSTALL = [
    """
    CREATE TRIGGER agents_sessioncount_add
    AFTER INSERT ON agents_executionsession
    BEGIN
        INSERT INTO agents_sessioncount (agent_id, total) VALUES (NEW.agent_id, 1)
        ON CONFLICT (agent_id) DO UPDATE SET total = total + 1;
    END
    """,
    """
    CREATE TRIGGER agents_sessioncount_subtract
    AFTER DELETE ON agents_executionsession
    BEGIN
        UPDATE agents_sessioncount SET total = total - 1 WHERE agent_id = OLD.agent_id;
    END
    """,
    """
    CREATE TRIGGER agents_sessioncount_move
    AFTER UPDATE OF agent_id ON agents_executionsession
    WHEN OLD.agent_id IS NOT NEW.agent_id
    BEGIN
        UPDATE agents_sessioncount SET total = total - 1 WHERE agent_id = OLD.agent_id;
        INSERT INTO agents_sessioncount (agent_id, total) VALUES (NEW.agent_id, 1)
        ON CONFLICT (agent_id) DO UPDATE SET total = total + 1;
    END
    """,
]

SQLITE_REMOVE = [
    f"DROP TRIGGER IF EXISTS agents_sessioncount_{name}" for name in ("add", "subtract", "move")
]

INSTALL = {"postgresql": POSTGRESQL_INSTALL, "sqlite": SQLITE_INSTALL}
REMOVE = {"postgresql": POSTGRESQL_REMOVE, "sqlite": SQLITE_REMOVE}


def _execute(connection, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def count_sessions(connection) -> None:
    """Recount every agent's sessions from scratch."""
    if connection.vendor not in INSTALL:
        return
    with transaction.atomic(using=connection.alias):
        if connection.vendor == "postgresql":
            # Writers wait until the recount commits: a session written in
            # between would be wiped with the old counts or missed by the new.
            _execute(connection, ["LOCK TABLE agents_executionsession IN SHARE MODE"])
        _execute(
            connection,
            [
                "DELETE FROM agents_sessioncount",
                "INSERT INTO agents_sessioncount (agent_id, total) "
                "SELECT agent_id, count(*) FROM agents_executionsession GROUP BY agent_id",
            ],
        )


def install_triggers(apps, schema_editor) -> None:
    connection = schema_editor.connection
    _execute(connection, INSTALL.get(connection.vendor, []))
    count_sessions(connection)


def remove_triggers(apps, schema_editor) -> None:
    connection = schema_editor.connection
    _execute(connection, REMOVE.get(connection.vendor, []))


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_help_texts"),
    ]

    operations = [
        migrations.CreateModel(
            name="AgentSessionCount",
            fields=[
                (
                    "agent",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="session_count",
                        serialize=False,
                        to="agents.aiagent",
                    ),
                ),
                (
                    "total",
                    models.BigIntegerField(
                        default=0, help_text="The agent's sessions, all statuses."
                    ),
                ),
            ],
            options={
                "db_table": "agents_sessioncount",
            },
        ),
        migrations.RunPython(install_triggers, remove_triggers),
    ]
