"""Add the columns and indexes a model gained since the database was created (`create_all` only adds tables).

A new field needs nothing else to reach existing databases: it is added as a nullable column, with the
field's scalar default (if any) as the column default so the rows already there read as that value.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, inspect, literal
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

log = logging.getLogger("ccbridge.storage")


def add_new_columns(conn: Connection) -> list[str]:
    """Add each model column missing from its table, then any missing index; the `table.column`s added."""
    schema = inspect(conn)
    added: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        if not schema.has_table(table.name):
            continue
        present = {c["name"] for c in schema.get_columns(table.name)}
        missing = [column for column in table.columns if column.name not in present]
        for column in missing:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} "
                                 f"{column.type.compile(dialect=conn.dialect)}{_default(conn, column)}")
            added.append(f"{table.name}.{column.name}")
        if missing:
            indexes = {i["name"] for i in inspect(conn).get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in indexes:
                    index.create(conn)
    if added:
        log.warning("ccbridge: capture database: added columns %s", ", ".join(added))
    return added


def _default(conn: Connection, column: Column[object]) -> str:
    default = column.default
    value = getattr(default, "arg", None) if default is not None and getattr(default, "is_scalar", False) else None
    if value is None:
        return ""
    rendered = literal(value).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return f" DEFAULT {rendered}"
