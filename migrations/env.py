"""Alembic environment: used both by `alembic upgrade head` and by Library.open()."""
from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from organizer.config import default_db_url
from organizer.db import foreign_keys_off, make_engine
from organizer.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or default_db_url()
    engine = make_engine(url)
    with engine.connect() as conn, foreign_keys_off(conn), conn.begin():
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url") or default_db_url(), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
