"""A database created before a model gained a field gets the column (with its default) when it is opened."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text

from ccbridge.storage.db import open_engine


def test_a_field_added_since_the_database_was_made_is_added_with_its_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = open_engine(url)
    with engine.begin() as conn:  # make it look like a database from before these fields existed
        conn.exec_driver_sql("DROP INDEX ix_exchange_routed")
        conn.exec_driver_sql("ALTER TABLE exchange DROP COLUMN routed")
        conn.exec_driver_sql("ALTER TABLE session DROP COLUMN routed_count")
        conn.execute(text("INSERT INTO session (id, started_at, last_activity_at, models, request_count, "
                          "subagent_request_count, subagent_runs, input_tokens, output_tokens, "
                          "cache_creation_input_tokens, cache_read_input_tokens, error_count) "
                          "VALUES ('s1', :t, :t, '[]', 1, 0, 0, 0, 0, 0, 0, 0)"),
                     {"t": datetime.now(UTC).isoformat(sep=" ")})
    engine.dispose()

    engine = open_engine(url)
    schema = inspect(engine)
    assert "routed" in {c["name"] for c in schema.get_columns("exchange")}
    assert "ix_exchange_routed" in {i["name"] for i in schema.get_indexes("exchange")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT routed_count FROM session WHERE id = 's1'")).scalar_one() == 0
    engine.dispose()
    open_engine(url).dispose()  # a second open has nothing left to add
