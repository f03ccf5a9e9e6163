"""Recording's statements on PostgreSQL: a worker's batch of results (hundreds, of as many monitors) in a handful of
set-based statements, whatever its size — lock, look up, COPY, update — issued on the psycopg connection itself.

Why not the ORM here (measured, bench/recording.py): Django's PostgreSQL cursors bind parameters client-side, quoting
every value of a 500-row statement into its text, and instantiating a model row by row through `from_db` costs
~25 us of Python a row; its bulk_create prepares each field of each row. A server-bound psycopg cursor sends the
arrays as they are, COPY streams the rows in binary, and the models recording hands on are made as unpickling makes
them (`_instance`). Elsewhere (SQLite, `lookout dev`) lookout.probes.results keeps to the ORM.

Everything runs in the caller's transaction (probe_results_record's), on the connection Django opened for it.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Field, Model
from django.db.models.base import ModelState
from psycopg.types.json import Jsonb

from lookout.monitors.models import Monitor, ProbeResult

M = TypeVar("M", bound=Model)

_RESULTS = ProbeResult._meta.db_table
_MONITORS = Monitor._meta.db_table
# The results' id sequence (lookout.monitors migration 0004 names it so: a partitioned table has no identity).
_RESULT_IDS = f"{_RESULTS}_id_seq"


def _field(model: type[Model], name: str) -> "Field[Any, Any]":
    model_field = model._meta.get_field(name)
    if not isinstance(model_field, Field) or model_field.column is None:  # a relation's other side, or no column
        raise TypeError(f"{model.__name__}.{name} is not a column of its table")
    return model_field


def _quoted(fields: Iterable["Field[Any, Any]"]) -> str:
    return ", ".join(connection.ops.quote_name(str(model_field.column)) for model_field in fields)


def _sql_type(model_field: "Field[Any, Any]") -> str:
    """The column's type as an array's element: no length (varchar, not varchar(16)), as bulk_create casts."""
    db_type = model_field.db_type(connection)
    if db_type is None:
        raise TypeError(f"{model_field.model.__name__}.{model_field.name} has no column")
    return db_type.split("(")[0]


@contextmanager
def _cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A cursor on the connection of Django's current transaction that binds parameters on the server.

    Its errors are Django's (django.db.OperationalError, ...), as a Django cursor's: the batchers and the tasks' retries
    recognise a lost database by those, and Django then knows the connection is unusable."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _instance(model: type[M], attnames: Sequence[str], values: Sequence[Any]) -> M:
    """A model instance of a stored row, made as unpickling makes one (Model.from_db runs __init__ over every field:
    ~25 us for a Monitor). Columns not given are deferred, as with .only()."""
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding = False
    state.db = DEFAULT_DB_ALIAS  # `connection` is the default one (and a proxy: ~1 us an attribute)
    instance.__dict__.update(zip(attnames, values, strict=True))
    return instance


def _json(value: Any) -> Any:
    # Rows come in binary (psycopg's loaders in C; Django's timestamptz loader is Python, for text), where psycopg
    # decodes jsonb itself; in text, Django's connection leaves it to JSONField: decoded here then.
    return json.loads(value) if isinstance(value, str | bytes) else value


def monitors_lock(*, monitor_ids: Iterable[int], reads: Sequence[str]) -> dict[int, Monitor]:
    """Lock these monitors' rows (one statement, in id order: two batches never deadlock) and read `reads` of them,
    by id; a monitor deleted meanwhile is missing."""
    fields = [Monitor._meta.pk, *(_field(Monitor, name) for name in reads)]
    attnames = [model_field.attname for model_field in fields]
    jsons = [i for i, model_field in enumerate(fields) if model_field.get_internal_type() == "JSONField"]
    with _cursor() as cursor:
        cursor.execute(f"SELECT {_quoted(fields)} FROM {connection.ops.quote_name(_MONITORS)} "
                       f"WHERE id = ANY(%b) ORDER BY id FOR UPDATE", [sorted(set(monitor_ids))], binary=True)
        rows = cursor.fetchall()
    monitors = {}
    for row in rows:
        values = list(row)
        for i in jsons:
            values[i] = _json(values[i])
        monitors[values[0]] = _instance(Monitor, attnames, values)
    return monitors


_RESULT_FIELDS = [_field(ProbeResult, model_field.name) for model_field in ProbeResult._meta.concrete_fields]
_RESULT_ATTNAMES = [model_field.attname for model_field in _RESULT_FIELDS]
_RESULT_JSON = [i for i, model_field in enumerate(_RESULT_FIELDS) if model_field.get_internal_type() == "JSONField"]


def results_recorded(*, task_ids: Sequence[str], since: datetime, until: datetime) -> list[ProbeResult]:
    """The stored results with these task ids checked within [since, until]: found through the task_id index of the
    few daily partitions that range covers (the bounds prune the others)."""
    with _cursor() as cursor:
        cursor.execute(f"SELECT {_quoted(_RESULT_FIELDS)} FROM {connection.ops.quote_name(_RESULTS)} "
                       f"WHERE task_id = ANY(%b) AND checked_at >= %b AND checked_at <= %b",
                       [list(task_ids), since, until], binary=True)
        rows = cursor.fetchall()
    stored = []
    for row in rows:
        values = list(row)
        for i in _RESULT_JSON:
            values[i] = _json(values[i])
        stored.append(_instance(ProbeResult, _RESULT_ATTNAMES, values))
    return stored


def result_instance(values: Sequence[Any]) -> ProbeResult:
    """A result to be stored by results_insert: values in the order of ProbeResult's columns, id None."""
    result = _instance(ProbeResult, _RESULT_ATTNAMES, values)
    result._state.adding = True
    return result


_COPY_TYPES = [_sql_type(model_field) for model_field in _RESULT_FIELDS]


def results_insert(results: Sequence[ProbeResult]) -> None:
    """Insert these new results (binary COPY: no SQL parsed per row), their ids taken from the sequence first, in
    order, and set on them."""
    if not results:
        return
    with _cursor() as cursor:
        cursor.execute(f"SELECT nextval('{_RESULT_IDS}') FROM generate_series(1, %s)", [len(results)])
        ids = [row[0] for row in cursor.fetchall()]
        with cursor.copy(f"COPY {connection.ops.quote_name(_RESULTS)} ({_quoted(_RESULT_FIELDS)}) "
                         f"FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_COPY_TYPES)
            for result, result_id in zip(results, ids, strict=True):
                result.id = result_id
                result._state.adding = False
                copy.write_row([getattr(result, attname) for attname in _RESULT_ATTNAMES])


def monitors_save(*, monitors: Sequence[Monitor], names: Sequence[str]) -> None:
    """Write the columns `names` of these monitors (locked by the caller) from their attributes: one UPDATE from
    arrays, whatever the number of rows. Columns a result did not change are written back as read."""
    if not monitors:
        return
    fields = [Monitor._meta.pk, *(_field(Monitor, name) for name in names)]
    quote = connection.ops.quote_name
    columns = [quote(str(model_field.column)) for model_field in fields]
    arrays = ", ".join(f"%b::{_sql_type(model_field)}[]" for model_field in fields)
    sql = (f"UPDATE {quote(_MONITORS)} AS m SET " + ", ".join(f"{column} = v.{column}" for column in columns[1:])
           + f" FROM UNNEST({arrays}) AS v({', '.join(columns)}) WHERE m.{columns[0]} = v.{columns[0]}")
    params = []
    for model_field in fields:
        values = [getattr(monitor, model_field.attname) for monitor in monitors]
        if model_field.get_internal_type() == "JSONField":
            values = [Jsonb(value) for value in values]
        params.append(values)
    with _cursor() as cursor:
        cursor.execute(sql, params)
