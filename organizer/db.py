"""Opening a library: engine, SQLite pragmas, migrate-on-open, and the one session pattern.

Use it like this everywhere (CLI, dashboard, tests)::

    lib = Library.open(settings.db_url)
    with lib.session() as s:      # one transaction: commit on success, rollback on error
        ...

SQLite runs in WAL mode with a long busy timeout so a scan and the dashboard can write
the same file at once without "database is locked" errors.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .errors import LibraryError
from .models import LibraryMeta

BUSY_TIMEOUT_S = 60


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            parent = Path(path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create the library folder {parent}: {exc.strerror}") from exc
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy emit BEGIN itself so a write transaction takes the lock up front
        # ("BEGIN IMMEDIATE") instead of failing on lock upgrade under concurrency.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_tx(dbapi_conn: sqlite3.Connection, _rec: object) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str):  # -> alembic.config.Config (imported lazily: alembic is slow to import)
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the app calls this on every open)."""
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


class Library:
    """An open photo library: a database plus the photo root it indexes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> "Library":
        """Open (creating if needed) the library at ``url`` and upgrade its schema.

        Raises :class:`LibraryError` with a one-line reason if the database is unusable.
        """
        engine = make_engine(url)
        try:
            if migrate:
                if current_revision(engine) != head_revision():
                    upgrade(engine)
            elif not inspect(engine).has_table("photos"):
                raise LibraryError(f"{url} is not an organizer library")
        except (OperationalError, sqlite3.DatabaseError) as exc:
            engine.dispose()
            raise LibraryError(f"cannot open the library {url}: {_reason(exc)}") from exc
        except SQLAlchemyError as exc:
            engine.dispose()
            raise LibraryError(f"cannot open the library {url}: {_reason(exc)}") from exc
        return cls(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commits when the block ends, rolls back if it raises."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # --- library facts -----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(LibraryMeta, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.session() as s:
            s.merge(LibraryMeta(key=key, value=value))

    @property
    def root(self) -> Path | None:
        """The photo folder this library indexes (set by the first scan)."""
        value = self.get_meta("root")
        return Path(value) if value else None

    def close(self) -> None:
        self.engine.dispose()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


__all__ = ["Library", "make_engine", "upgrade", "head_revision", "current_revision", "select"]
