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
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from sqlalchemy import create_engine, event, inspect, make_url, select
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .config import BadValue, hide_password, normalise_db_url
from .errors import LibraryError
from .models import LibraryMeta

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

BUSY_TIMEOUT_S = 60


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    # a read-only library (write-protected card, mode=ro) cannot switch to WAL: reading
    # still works, and each write fails with a clear message (see Library.session)
    with suppress(sqlite3.OperationalError):
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.close()


def sqlite_file(url: str) -> Path | None:
    """The database file a sqlite URL names (also ``sqlite:///file:PATH?mode=ro&uri=true``)."""
    database = make_url(url).database or ""
    if database.startswith("file:"):
        # SQLite decodes %HH in file: URIs (read_only_url writes them so)
        database = unquote(database[5:].split("?", 1)[0])
    if not database or database == ":memory:":
        return None
    return Path(database)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (a file path or an SQLAlchemy URL).

    Every way the URL itself can be wrong (garbled, an unknown database type, the
    driver not installed, an async driver) is a :class:`LibraryError` in one line; a
    SQLite library that can only be read is opened read-only (see :func:`read_only_url`).
    """
    try:
        url = normalise_db_url(url)
    except BadValue as exc:
        raise LibraryError(f"the library {hide_password(url)!r} {exc}") from None
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    engine = _create_engine(url, pool_pre_ping=True)
    if engine.dialect.is_async:
        engine.dispose()
        raise LibraryError(f"{engine.dialect.driver} is an asyncio driver, which the organizer cannot use: "
                           f"name a plain one (e.g. postgresql+psycopg://)")
    return engine


#: the module SQLAlchemy imports for a driver -> what to pip install for it
_DRIVER_PACKAGES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
                    "mysql": "mysql-connector-python", "pyodbc": "pyodbc", "oracledb": "oracledb"}
_BACKENDS = {"postgresql": "PostgreSQL", "mysql": "MySQL", "mariadb": "MariaDB", "mssql": "SQL Server",
             "oracle": "Oracle", "sqlite": "SQLite"}


def _create_engine(url: str | URL, **kwargs: object) -> Engine:
    try:
        return create_engine(url, **kwargs)
    except ImportError as exc:  # the dialect exists, its driver module does not
        parsed = make_url(url)
        backend = _BACKENDS.get(parsed.get_backend_name(), parsed.get_backend_name())
        module = (exc.name or "").split(".")[0]
        package = _DRIVER_PACKAGES.get(module, module or parsed.get_driver_name())
        raise LibraryError(f"the {backend} driver is not installed: pip install {package}") from None
    except (ArgumentError, ValueError) as exc:
        shown = hide_password(str(url) if isinstance(url, str) else url.render_as_string())
        raise LibraryError(f"{shown} is not a usable database URL: {str(exc).splitlines()[0]}") from None


def read_only_url(url: URL, path: Path) -> URL | None:
    """The URL to read the SQLite library at ``path`` with when it cannot be written
    (read-only file, folder, medium or ``?mode=ro``); None when it can be written or
    does not exist yet.

    Probed with SQLite itself, because permissions alone do not say it (root, read-only
    mounts, immutable files). A WAL library needs its ``-shm`` file even to be read;
    where that file is missing and cannot be created (a read-only folder), it is opened
    ``immutable=1``, which is safe only when nothing sits in its ``-wal`` log, so that
    case alone is refused: nobody writes such a library (a writer keeps ``-shm``).
    """
    query = dict(url.query)
    asked_read_only = query.get("mode") == "ro" or query.get("immutable") == "1"
    if not path.is_file() or (not asked_read_only and _can_write(path)):
        return None
    for key in ("mode", "immutable", "uri"):
        query.pop(key, None)
    read_only = URL.create("sqlite", database=f"file:{quote(str(path))}",
                           query={**query, "mode": "ro", "uri": "true"})
    if _can_read(read_only):
        return read_only
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise LibraryError(f"the library is read-only and its log {wal.name} holds changes that SQLite can only "
                           f"read with {path.name}-shm beside it; copy the library with its -wal file to a "
                           f"writable place")
    return read_only.update_query_dict({"immutable": "1"})


def _can_write(path: Path) -> bool:
    """Whether SQLite can take the write lock on ``path`` (a busy library counts as writable)."""
    return _sqlite_allows(f"file:{quote(str(path))}?mode=rw", ("BEGIN IMMEDIATE", "ROLLBACK"), timeout=0)


def _can_read(url: URL) -> bool:
    name = url.database or ""
    query = "&".join(f"{k}={v}" for k, v in url.query.items() if k != "uri")
    return _sqlite_allows(f"{name}?{query}", ("SELECT count(*) FROM sqlite_master",), timeout=BUSY_TIMEOUT_S)


def _sqlite_allows(uri: str, statements: tuple[str, ...], *, timeout: float) -> bool:
    """Whether SQLite runs ``statements`` on the database ``uri`` without a read-only or
    cannot-open refusal (other failures count as allowed: the real open reports them)."""
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
        try:
            for sql in statements:
                conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        return not ("readonly" in text or "read-only" in text or "unable to open" in text)
    except sqlite3.DatabaseError:
        return True  # not a database: the real open says so
    return True


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    path = sqlite_file(url)
    target: str | URL = url
    read_only = False
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder {path.parent}: {exc.strerror}") from exc
        ro = read_only_url(parsed, path)
        if ro is not None:
            target, read_only = ro, True
    engine = _create_engine(target, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_pragmas)

    # Let SQLAlchemy emit BEGIN itself so a write transaction takes the lock up front
    # ("BEGIN IMMEDIATE") instead of failing on lock upgrade under concurrency. A
    # read-only library cannot take that lock: a plain BEGIN reads, and a write then
    # fails with the read-only message.
    @event.listens_for(engine, "connect")
    def _no_pysqlite_tx(dbapi_conn: sqlite3.Connection, _rec: object) -> None:
        dbapi_conn.isolation_level = None

    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config  # here, not at the top: alembic is slow to import

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


def is_read_only(engine: Engine) -> bool:
    """Whether this engine reads a SQLite library read-only (``mode=ro``, see read_only_url)."""
    return engine.dialect.name == "sqlite" and engine.url.query.get("mode") == "ro"


class Library:
    """An open photo library: a database plus the photo root it indexes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Library:
        """Open (creating if needed) the library at ``url`` and upgrade its schema.

        Raises :class:`LibraryError` with a one-line reason if the database is unusable.
        """
        engine = make_engine(url)
        shown = hide_password(url)
        try:
            if migrate:
                if current_revision(engine) != head_revision():
                    if is_read_only(engine):
                        raise LibraryError(f"the library {shown} was made by an older version and needs an "
                                           f"upgrade, but it is read-only; nothing was changed (open it once "
                                           f"from a writable place)")
                    upgrade(engine)
            elif not inspect(engine).has_table("photos"):
                raise LibraryError(f"{shown} is not an organizer library")
        except (OperationalError, sqlite3.DatabaseError) as exc:
            engine.dispose()
            friendly = storage_error(exc)
            raise LibraryError(f"cannot open the library {shown}: {friendly or _reason(exc)}") from exc
        except SQLAlchemyError as exc:
            engine.dispose()
            raise LibraryError(f"cannot open the library {shown}: {_reason(exc)}") from exc
        except LibraryError:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def read_only(self) -> bool:
        return is_read_only(self.engine)

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
    # when the connection is already gone (e.g. an I/O error), SQLite rolls back an
    # unfinished transaction itself, from the journal, when the file is next opened
    with suppress(SQLAlchemyError, sqlite3.Error):
        s.rollback()


_READ_ONLY = ("the library file is read-only; nothing was changed (check the file's permissions, "
              "or copy the library to a writable place)")
#: SQLite's words for a storage failure -> what the user is told
_STORAGE_ERRORS = (
    ("database or disk is full", ("the disk holding the library is full; nothing of the last step was saved "
                                  "(free some space and run it again)")),
    ("readonly database", _READ_ONLY),
    ("read-only", _READ_ONLY),
    ("database is locked", ("the library is locked by another program (waited {timeout} s); nothing was changed "
                            "- close the other program and try again")),
    ("disk i/o error", ("the library file could not be written (disk I/O error); nothing of the last step was "
                        "saved (is the disk full, or was it removed?)")),
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


__all__ = ["Library", "current_revision", "head_revision", "make_engine", "select", "upgrade"]
