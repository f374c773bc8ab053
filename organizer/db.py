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

from sqlalchemy import create_engine, event, inspect, make_url, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .errors import LibraryError
from .models import LibraryMeta

BUSY_TIMEOUT_S = 60


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        # a read-only library (write-protected card, mode=ro): reading still works, and
        # each write fails with a clear message (see Library.session)
        pass
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.close()


def sqlite_file(url: str) -> Path | None:
    """The database file a sqlite URL names (also ``sqlite:///file:PATH?mode=ro&uri=true``)."""
    database = make_url(url).database or ""
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return Path(database)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            parent = path.parent
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
    with engine.connect() as conn, foreign_keys_off(conn), conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@contextmanager
def foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite's way to rebuild a table (copy, drop, rename) needs foreign keys off: with
    them on, dropping ``faces`` runs ON DELETE CASCADE and empties every table that points
    at it. The pragma only takes effect outside a transaction, hence a context of its own."""
    # on the driver's own connection: SQLAlchemy would open a transaction for the pragma
    raw = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
    if raw is not None:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")


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
            friendly = storage_error(exc)
            raise LibraryError(f"cannot open the library {url}: {friendly or _reason(exc)}") from exc
        except SQLAlchemyError as exc:
            engine.dispose()
            raise LibraryError(f"cannot open the library {url}: {_reason(exc)}") from exc
        return cls(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commits when the block ends, rolls back if it raises.

        When the storage itself fails (disk full, read-only file, locked by another
        program for longer than the busy timeout, I/O error) the transaction is rolled
        back (nothing of it is written) and :class:`LibraryError` says why in one line.
        """
        s = self._sessions()
        try:
            yield s
            s.commit()
        except (OperationalError, sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            _rollback_quietly(s)
            friendly = storage_error(exc)
            if friendly is None:
                raise
            raise friendly from exc
        except BaseException:
            _rollback_quietly(s)
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


def _rollback_quietly(s: Session) -> None:
    try:
        s.rollback()
    except (SQLAlchemyError, sqlite3.Error):
        # the connection is already gone (e.g. an I/O error): SQLite rolls back an
        # unfinished transaction itself, from the journal, when the file is next opened
        pass


_READ_ONLY = ("the library file is read-only; nothing was changed (check the file's permissions, "
              "or copy the library to a writable place)")
#: SQLite's words for a storage failure -> what the user is told
_STORAGE_ERRORS = (
    ("database or disk is full", "the disk holding the library is full; nothing of the last step was saved "
                                 "(free some space and run it again)"),
    ("readonly database", _READ_ONLY),
    ("read-only", _READ_ONLY),
    ("database is locked", "the library is locked by another program (waited {timeout} s); nothing was changed "
                           "- close the other program and try again"),
    ("disk i/o error", "the library file could not be written (disk I/O error); nothing of the last step was "
                       "saved (is the disk full, or was it removed?)"),
    ("unable to open database", "the library file cannot be opened; nothing was changed"),
    ("file is not a database", "the library file is damaged or is not an organizer library"),
    ("database disk image is malformed", "the library file is damaged (restore it from a backup)"),
)


def storage_error(exc: BaseException) -> LibraryError | None:
    """A one-line :class:`LibraryError` for a storage failure, None for anything else."""
    text = _reason(exc).lower()
    for words, message in _STORAGE_ERRORS:
        if words in text:
            return LibraryError(message.format(timeout=BUSY_TIMEOUT_S))
    return None


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


__all__ = ["Library", "make_engine", "upgrade", "head_revision", "current_revision", "select"]
