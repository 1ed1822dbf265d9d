"""Inserting many rows of one model at once, skipping those a unique key already holds.

Beat writes a ledger row and a session for every agent due in a slot, tens of
thousands at a time. ``bulk_create`` prepares every field of every instance
in Python and sends each value as a parameter of its own, and cannot say
which rows a conflict skipped, so a second read is needed to find out. On
PostgreSQL ``insert_new`` instead sends one array per column that differs
between rows and one value for each column they share, and the server turns
the arrays into rows (``unnest``) and returns the keys it wrote
(``ON CONFLICT DO NOTHING RETURNING``). Other databases get ``bulk_create``
and the read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model
from django.utils import timezone

T = TypeVar("T")


def parameter_batch() -> int:
    """How many values one statement may take in a list (``pk__in=...``)."""
    # SQLite caps the parameters of one statement; 900 stays below every build's cap.
    return 900 if connections[DEFAULT_DB_ALIAS].vendor == "sqlite" else 10_000


def chunks(items: Sequence[T], size: int | None = None) -> Iterator[list[T]]:
    """``items`` in lists of ``size``, by default as many as one statement may take."""
    size = size or parameter_batch()
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def insert_new(
    model: type[Model],
    each: Mapping[str, Sequence[Any]],
    same: Mapping[str, Any] | None = None,
) -> set[Any]:
    """Insert one row per position of the ``each`` columns and return the primary
    keys of the rows written; a row a unique constraint already holds is skipped.

    ``each`` maps field names (or attnames, ``agent_id``) to one value per row
    and must hold the primary key; ``same`` gives the fields every row shares.
    Every other field takes its default, computed once, except ``auto_now`` and
    ``auto_now_add`` fields, which get the time of each row as ``save`` would.
    """
    meta = model._meta
    assert meta.pk is not None
    fields = {field.name: field for field in meta.concrete_fields}
    fields.update({field.attname: field for field in meta.concrete_fields})
    unknown = sorted(set(each).union(same or {}) - set(fields))
    if unknown:
        raise ValueError(f"{model.__name__} has no fields {unknown}.")
    columns = {fields[name].attname: list(values) for name, values in each.items()}
    shared = {fields[name].attname: value for name, value in (same or {}).items()}
    count = len(next(iter(columns.values()), []))
    if any(len(values) != count for values in columns.values()):
        raise ValueError("Every column needs one value per row.")
    if meta.pk.attname not in columns:
        raise ValueError("The primary key must be given for every row.")
    if count == 0:
        return set()
    for field in meta.concrete_fields:
        if field.attname in columns or field.attname in shared:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            columns[field.attname] = [timezone.now() for _ in range(count)]
        else:
            shared[field.attname] = field.get_default()
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        return _bulk_create(model, columns, shared, count)
    return _insert_unnested(model, fields, columns, shared)


def _insert_unnested(
    model: type[Model],
    fields: dict[str, Field],
    columns: dict[str, list[Any]],
    shared: dict[str, Any],
) -> set[Any]:
    meta = model._meta
    assert meta.pk is not None
    # The connection itself, not the proxy: every value's preparation asks it.
    connection = connections[DEFAULT_DB_ALIAS]
    names, selected, arrays, aliases, params = [], [], [], [], []
    # The shared values come first in the statement, so first in the parameters.
    for attname, value in shared.items():
        field = fields[attname]
        names.append(_column(field))
        selected.append(f"%s::{field.db_type(connection)}")
        params.append(field.get_db_prep_save(value, connection))
    for attname, values in columns.items():
        field = fields[attname]
        column = _column(field)
        names.append(column)
        aliases.append(column)
        selected.append(f"v.{column}")
        arrays.append(f"%s::{field.db_type(connection)}[]")
        params.append([field.get_db_prep_save(value, connection) for value in values])
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({', '.join(names)}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS v({', '.join(aliases)}) "
        f"ON CONFLICT DO NOTHING RETURNING {_column(meta.pk)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {meta.pk.to_python(pk) for (pk,) in cursor.fetchall()}


def _column(field: Field) -> str:
    assert field.column is not None  # every concrete field has one
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(field.column)


def _bulk_create(
    model: type[Model], columns: dict[str, list[Any]], shared: dict[str, Any], count: int
) -> set[Any]:
    rows = [
        model(**shared, **{attname: values[index] for attname, values in columns.items()})
        for index in range(count)
    ]
    model._default_manager.bulk_create(rows, ignore_conflicts=True)
    written: set[Any] = set()
    for keys in chunks([row.pk for row in rows]):
        written.update(model._default_manager.filter(pk__in=keys).values_list("pk", flat=True))
    return written
