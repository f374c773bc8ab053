"""Issue 11, items 14, 16 and 17: settings from the environment are checked like the
flags; database URLs that cannot work say why in one line; a library on read-only
storage can be read.

Read-only storage is made for real: the library sits in a folder (or is a file) that the
user running the command cannot write. Tests run as root, who can write anything, so the
commands then run as the user ``nobody``, like a family laptop's user would."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from organizer import cli
from organizer.config import Settings
from organizer.db import Library, current_revision, head_revision, make_engine, upgrade
from organizer.errors import LibraryError, SettingError

from .conftest import REPO

NOBODY = 65534
AS_ROOT = os.geteuid() == 0


def _one_line(err: str) -> bool:
    text = err.strip()
    return bool(text) and "\n" not in text and "Traceback" not in text


def _cli(*argv: str, env: dict[str, str] | None = None, user: int | None = None,
         cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs = {"user": user, "group": user, "extra_groups": []}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORGANIZER_")}
    full_env.update({"HOME": tempfile.gettempdir(), "PYTHONPATH": str(REPO), **(env or {})})
    try:
        return subprocess.run([sys.executable, "-m", "organizer.cli", *argv], check=False, cwd=cwd, env=full_env,
                              capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]
    except PermissionError as exc:
        pytest.skip(f"cannot run a process as the user nobody here ({exc})")


# --- item 14: one validation path for flags and environment --------------------------------

#: for every setting, values it must refuse; a setting added later without a row fails
#: test_every_setting_has_refused_values (so it is covered too)
BAD_VALUES: dict[str, list[str]] = {
    "db_url": ["file:///x/lib.db", "sqlite://relative.db", "sqlite:/x.db", "postgresql://u@h:port/db", "://x",
               "nosuchdb://h/x", "sqlite://"],
    "model": ["magic", "HOG", "cnn "],
    "upsample": ["-1", "two", "9", "1.5"],
    "max_size": ["0", "-5", "abc", "1e3", "50"],
    "workers": ["two", "0", "-1", "1.5", "1_0", "100000"],
    "batch_size": ["0", "-1", "x"],
    "max_pixels": ["0", "100", "1e9"],
    "thumb_size": ["0", "2", "100000"],
    "eps": ["0", "-0.4", "inf", "nan", "1e999", "x", "5"],
    "min_samples": ["0", "-2", "1.5"],
}

#: values each setting takes from a flag and from the environment alike
GOOD_VALUES = {"model": ("cnn", "cnn"), "upsample": ("2", 2), "max_size": ("900", 900), "workers": ("3", 3),
               "batch_size": ("5", 5), "max_pixels": ("20000000", 20_000_000), "thumb_size": ("64", 64),
               "eps": ("0.5", 0.5), "min_samples": ("3", 3)}


def test_every_setting_has_refused_values() -> None:
    assert {f.name for f in dataclasses.fields(Settings)} == set(BAD_VALUES)


def _env_name(name: str) -> str:
    return "ORGANIZER_DB" if name == "db_url" else f"ORGANIZER_{name.upper()}"


def _flag_of(name: str) -> tuple[str, str] | None:
    """(command, flag) of the CLI flag that sets ``name``, from the parser itself."""
    for command, parser in _commands().items():
        for action in parser._actions:
            if action.dest == name and action.option_strings:
                return command, action.option_strings[-1]
    return None


def _commands() -> dict:
    import argparse

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_bad_environment_values_are_one_line_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad value: exit non-zero, one line naming the variable and what it takes, and
    nothing is created (the library file is not even made)."""
    monkeypatch.chdir(tmp_path)
    for var in [k for k in os.environ if k.startswith("ORGANIZER_")]:
        monkeypatch.delenv(var)
    db = tmp_path / "lib.db"
    problems = []
    for name, values in BAD_VALUES.items():
        var = _env_name(name)
        for value in values:
            monkeypatch.setenv(var, value)
            argv = ["stats"] if name == "db_url" else ["stats", "--db", str(db)]
            try:
                code = cli.main(argv)
            except Exception as exc:  # noqa: BLE001 - an escaping exception is the failure looked for
                problems.append(f"{var}={value!r}: raised {exc.__class__.__name__}: {exc}")
                continue
            err = capsys.readouterr().err
            if code == 0 or not _one_line(err) or var not in err or "allowed:" not in err:
                problems.append(f"{var}={value!r}: exit {code}, stderr {err!r}")
            monkeypatch.delenv(var)
    assert problems == [], "\n".join(problems)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was created


def test_flags_refuse_what_the_environment_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same values through each setting's flag: the same checks (exit 2, one line)."""
    problems, flags = [], 0
    empty = tmp_path / "empty"
    empty.mkdir()
    for name, values in BAD_VALUES.items():
        where = _flag_of(name)
        if where is None:
            continue
        flags += 1
        command, flag = where
        for value in values:
            # an empty folder to scan: a value wrongly taken must not start real work
            argv = [command, *([str(empty)] if command == "scan" else []), f"{flag}={value}"]
            if flag != "--db":
                argv += ["--db", str(tmp_path / "lib.db")]
            code = cli.main(argv)
            err = capsys.readouterr().err
            if code != 2 or not _one_line(err):
                problems.append(f"{argv}: exit {code}, stderr {err!r}")
    assert flags >= 7 and problems == [], "\n".join(problems)
    assert not (tmp_path / "lib.db").exists()


def test_good_values_mean_the_same_from_a_flag_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (text, value) in GOOD_VALUES.items():
        monkeypatch.setenv(_env_name(name), text)
        assert getattr(Settings.from_env(), name) == value, name
        monkeypatch.delenv(_env_name(name))
        where = _flag_of(name)
        if where is not None:
            command, flag = where
            args = cli.build_parser().parse_args([command, *(["."] if command == "scan" else []), flag, text])
            assert getattr(cli.settings_from(args), name) == value, name
    # a flag wins over the environment; an empty variable counts as unset
    monkeypatch.setenv("ORGANIZER_WORKERS", "5")
    assert cli.settings_from(cli.build_parser().parse_args(["scan", ".", "--workers", "2"])).workers == 2
    monkeypatch.setenv("ORGANIZER_WORKERS", "")
    assert Settings.from_env().workers == Settings().workers


def test_a_bad_variable_through_a_real_scan_changes_nothing(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for var, value in (("ORGANIZER_WORKERS", "two"), ("ORGANIZER_UPSAMPLE", "-1"), ("ORGANIZER_MAX_SIZE", "0")):
        done = _cli("scan", str(photos), "--db", str(tmp_path / "lib.db"), env={var: value})
        assert done.returncode != 0 and _one_line(done.stderr) and var in done.stderr, done.stderr
    assert not (tmp_path / "lib.db").exists()


def test_organizer_db_takes_a_plain_path_like_db(tmp_path: Path) -> None:
    """ORGANIZER_DB=/path/lib.db, a relative path and ~/ name the same file as --db."""
    made = _cli("upgrade", env={"ORGANIZER_DB": str(tmp_path / "lib.db")})
    assert made.returncode == 0, made.stderr
    assert current_revision(make_engine(f"sqlite:///{tmp_path / 'lib.db'}")) == head_revision()
    (tmp_path / "home").mkdir()
    for value, file in (("rel.db", tmp_path / "rel.db"), ("~/home.db", tmp_path / "home" / "home.db"),
                        (str(tmp_path / "lib.db"), tmp_path / "lib.db")):
        done = _cli("stats", cwd=tmp_path, env={"ORGANIZER_DB": value, "HOME": str(tmp_path / "home")})
        assert done.returncode == 0 and f"library:  sqlite:///{file}" in done.stdout, (value, done.stderr)
        assert file.exists()


def test_alembic_reads_a_checked_organizer_db(tmp_path: Path) -> None:
    """migrations/env.py takes ORGANIZER_DB through the same check (a path works there too)."""
    alembic = Path(sys.executable).with_name("alembic")
    env = {**os.environ, "ORGANIZER_DB": str(tmp_path / "a.db")}
    done = subprocess.run([str(alembic), "upgrade", "head"], check=False, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert current_revision(make_engine(str(tmp_path / "a.db"))) == head_revision()


# --- item 16: database URLs that cannot work ---------------------------------------------------

def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def bad_urls() -> Iterator[tuple[str, str]]:
    """(url, words the one-line message must contain)."""
    if not _installed("psycopg"):
        yield "postgresql://someone:s3cret-pw@localhost/photos", "pip install 'psycopg[binary]'"
        yield "postgresql+psycopg://someone@localhost/photos", "PostgreSQL driver is not installed"
    if not _installed("psycopg2"):
        yield "postgresql+psycopg2://someone@localhost/photos", "pip install psycopg2-binary"
    if not _installed("MySQLdb"):
        yield "mysql://someone:s3cret-pw@localhost/photos", "MySQL driver is not installed: pip install mysqlclient"
    if not _installed("pymysql"):
        yield "mysql+pymysql://someone@localhost/photos", "pip install pymysql"
    if not _installed("asyncpg"):
        yield "postgresql+asyncpg://someone@localhost/photos", "pip install asyncpg"
    yield "file:///tmp/x/lib.db", "give the path itself (/tmp/x/lib.db)"
    yield "http://example.org/lib.db", "database type or driver"
    yield "sqlite+nodriver:///x.db", "database type or driver"
    yield "sqlite://relative.db", "three slashes"
    yield "sqlite:/x.db", "TYPE://"
    yield "postgresql://someone:s3cret-pw@db:notaport/photos", "port"
    yield "postgresql://someone@[::1/photos", "not a valid database URL"
    yield "://nothing", "not a database URL"


def test_unusable_database_urls_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """From --db, from ORGANIZER_DB and from Library.open itself (the dashboard's way):
    one line saying what is wrong or missing, no password in it, nothing created."""
    monkeypatch.chdir(tmp_path)
    problems = []
    for url, words in bad_urls():
        for how in ("flag", "env"):
            if how == "env":
                monkeypatch.setenv("ORGANIZER_DB", url)
            try:
                code = cli.main(["stats", *(["--db", url] if how == "flag" else [])])
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{how} {url}: raised {exc.__class__.__name__}: {exc}")
                continue
            finally:
                monkeypatch.delenv("ORGANIZER_DB", raising=False)
            err = capsys.readouterr().err
            if code == 0 or not _one_line(err) or words not in err or "s3cret-pw" in err:
                problems.append(f"{how} {url}: exit {code}, stderr {err!r}")
        try:
            Library.open(url)
            problems.append(f"Library.open({url}) opened")
        except LibraryError as exc:
            if "\n" in str(exc) or words not in str(exc) or "s3cret-pw" in str(exc):
                problems.append(f"Library.open({url}): {exc}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"Library.open({url}) raised {exc.__class__.__name__}: {exc}")
    assert problems == [], "\n".join(problems)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_driver_through_a_real_process(tmp_path: Path) -> None:
    if _installed("psycopg"):
        pytest.skip("psycopg is installed here, so the missing-driver message cannot be shown")
    done = _cli("people", "--db", "postgresql://someone@localhost/photos")
    assert done.returncode == 1 and _one_line(done.stderr), done.stderr
    assert done.stderr.strip() == "organizer: the PostgreSQL driver is not installed: pip install 'psycopg[binary]'"


def test_an_in_memory_library_is_still_possible_in_code() -> None:
    """Tests and tools open ``sqlite://``; only the settings refuse it (a command's library
    would vanish when it ends)."""
    lib = Library.open("sqlite://")
    assert lib.root is None
    lib.close()
    with pytest.raises(SettingError, match="in-memory"):
        Settings.from_env({"ORGANIZER_DB": "sqlite://"})


# --- item 17: libraries on read-only storage ---------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic library with named people, in WAL mode, closed cleanly (no -wal left):
    made by another process, as a library copied onto a card or a share would be."""
    db = tmp_path_factory.mktemp("generated") / "library.db"
    code = ("import sys; from organizer.testing import generate_library; "
            "generate_library(sys.argv[1], faces=300, named_people=4)")
    subprocess.run([sys.executable, "-c", code, str(db)], cwd=REPO, check=True, timeout=300)
    assert not db.with_name("library.db-wal").exists()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    return db


@pytest.fixture()
def shared_dir() -> Iterator[Path]:
    """A folder under /tmp that the user nobody can reach (pytest's tmp_path is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="organizer-ro-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(base, ignore_errors=True)


def _names(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True) as c:
        return [r[0] for r in c.execute("SELECT name FROM people WHERE hidden = 0")]


def _read_only_user() -> int | None:
    """Who runs the commands: nobody when we are root (root writes anything), else us."""
    return NOBODY if AS_ROOT else None


def _check_reads_and_refused_writes(db: Path, urls: list[str], user: int | None, *,
                                    folder_writable: bool = False) -> None:
    before, listing = _sha(db), sorted(p.name for p in db.parent.iterdir())
    names = _names(db)
    assert len(names) >= 2
    for url in urls:
        people = _cli("people", "--db", url, user=user)
        assert people.returncode == 0, (url, people.stderr)
        assert all(n in people.stdout for n in names), people.stdout
        stats = _cli("stats", "--db", url, user=user)
        assert stats.returncode == 0 and "faces:    300" in stats.stdout, (url, stats.stderr)
    for argv in (["assign", "1", "--to", "Someone New"], ["forget", "--all-faces", "--yes"], ["hide", names[0]]):
        done = _cli(*argv, "--db", urls[0], user=user)
        assert done.returncode == 1 and _one_line(done.stderr) and "read-only" in done.stderr, (argv, done.stderr)
    assert _sha(db) == before and _names(db) == names
    left = sorted(p.name for p in db.parent.iterdir())
    if folder_writable:
        # SQLite's own readers make the WAL index (-shm) and an empty -wal where they may;
        # nothing of the library is in them
        assert set(left) - set(listing) <= {"library.db-wal", "library.db-shm"}, left
        wal = db.with_name("library.db-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    else:
        assert left == listing  # nothing could be, and nothing was, created


def test_wal_library_in_a_read_only_folder_is_readable(generated_db: Path, shared_dir: Path) -> None:
    """The folder cannot be written, so SQLite cannot make the -shm a WAL library needs
    even to be read: opened immutable (its -wal is empty), by path and by mode=ro URI."""
    folder = shared_dir / "card"
    folder.mkdir()
    db = folder / "library.db"
    shutil.copy(generated_db, db)
    db.chmod(0o644 if AS_ROOT else 0o444)
    if not AS_ROOT:
        folder.chmod(0o555)
    _check_reads_and_refused_writes(db, [str(db), f"sqlite:///file:{db}?mode=ro&uri=true"], _read_only_user())


def test_read_only_file_in_a_writable_folder_is_readable(generated_db: Path, shared_dir: Path) -> None:
    folder = shared_dir / "share"
    folder.mkdir()
    folder.chmod(0o777)
    db = folder / "library.db"
    shutil.copy(generated_db, db)
    db.chmod(0o644 if AS_ROOT else 0o444)  # root's file: nobody may read it, not write it
    _check_reads_and_refused_writes(db, [str(db), f"sqlite:///file:{db}?mode=ro&uri=true"], _read_only_user(),
                                    folder_writable=True)


def test_mode_ro_url_of_a_writable_wal_library_reads(generated_db: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """?mode=ro asked by the user on a library that could be written: reads work (no
    write lock is taken for them), writes give the read-only message, nothing changes."""
    db = tmp_path / "library.db"
    shutil.copy(generated_db, db)
    before = _sha(db)
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    assert cli.main(["people", "--db", url]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in _names(db)), out
    assert cli.main(["assign", "1", "--to", "Someone New", "--db", url]) == 1
    err = capsys.readouterr().err
    assert _one_line(err) and "read-only" in err, err
    assert _sha(db) == before


def test_read_only_library_that_needs_an_upgrade_is_not_migrated(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine, "0001")
    engine.dispose()
    before = _sha(db)
    assert cli.main(["stats", "--db", f"sqlite:///file:{db}?mode=ro&uri=true"]) == 1
    err = capsys.readouterr().err
    assert _one_line(err) and "needs an upgrade" in err and "read-only" in err, err
    assert _sha(db) == before


def test_read_only_copy_with_unmerged_log_is_refused_not_read_stale(generated_db: Path, shared_dir: Path) -> None:
    """A library copied while in use: its -wal holds changes, its -shm is missing and the
    folder is read-only. Reading it immutable would show the old state, so it is refused
    in one line instead."""
    work = shared_dir / "live"
    work.mkdir()
    shutil.copy(generated_db, work / "library.db")
    writer = sqlite3.connect(work / "library.db")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE people SET name = 'Renamed Later' WHERE id = (SELECT min(id) FROM people)")
    writer.commit()
    copy = shared_dir / "copy"
    copy.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(work / f"library.db{suffix}", copy / f"library.db{suffix}")
    writer.close()
    for f in copy.iterdir():
        f.chmod(0o644 if AS_ROOT else 0o444)
    if not AS_ROOT:
        copy.chmod(0o555)
    done = _cli("people", "--db", str(copy / "library.db"), user=_read_only_user())
    assert done.returncode == 1 and _one_line(done.stderr) and "-wal" in done.stderr, done.stderr
