"""Shared fixtures: real libraries built from the real photos in ../shared/photos.

Scanning is the slow part, so each library is scanned once per test session and every
test that changes it gets its own copy of the SQLite file (``sqlite3`` backup API, so the
copy is consistent even in WAL mode).
"""
from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from organizer.config import Settings
from organizer.db import Library
from organizer.models import Face, Photo
from organizer.scanner import scan

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "photos"
FIXTURES = Path(__file__).resolve().parent / "data"


def photos_dir(sub: str = "") -> Path:
    """A folder of ../shared/photos, or skip the test with the reason."""
    path = PHOTOS / sub
    if not path.exists():
        pytest.skip(f"needs the shared photo set at {path} (not present on this machine)")
    return path


def db_url(path: Path) -> str:
    return f"sqlite:///{path}"


def copy_db(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def library_copy(db: Path, tmp_path: Path) -> Iterator[Library]:
    """The body of a library fixture: a private, writable copy of the library file ``db``
    in ``tmp_path``, open while the test runs (``yield from library_copy(db, tmp_path)``)."""
    lib = Library.open(db_url(copy_db(db, tmp_path / "library.db")))
    yield lib
    lib.close()


def scanned_db(tmp_path_factory: pytest.TempPathFactory, folder: Path, name: str) -> Path:
    """``folder`` scanned once into a library file in a fresh folder named after ``name``."""
    db = tmp_path_factory.mktemp(name) / "library.db"
    scan_into(db, folder).close()
    return db


def built_db(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A library file ``build`` writes once, in a fresh folder named after ``name``."""
    db = tmp_path_factory.mktemp(name) / "template.db"
    build(db)
    return db


def chromium(*args: str):  # type: ignore[no-untyped-def]
    """Debian's headless Chromium through its chromedriver, with ``args`` added to the
    usual flags; skips the test where either is missing. The caller quits it."""
    chrome, chromedriver = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chrome.exists() and chromedriver.exists()):
        pytest.skip("needs Debian's /usr/bin/chromium and /usr/bin/chromedriver for the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chrome)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", *args):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(str(chromedriver)), options=options)


def settings_for(db: Path, **kw: object) -> Settings:
    return Settings(db_url=db_url(db)).with_overrides(**kw)


def scan_into(db: Path, folder: Path, **kw: object) -> Library:
    """Scan ``folder`` into a new library file ``db`` and return the open library."""
    settings = settings_for(db, **{"workers": 2, **kw})
    lib = Library.open(settings.db_url)
    scan(lib, folder, settings)
    return lib


def lfw_subset(dst: Path, identities: int = 12, per_identity: int = 6, min_photos: int = 6) -> Path:
    """Copy a deterministic subset of lfw-dev: the first ``identities`` people (by name)
    that have at least ``min_photos`` photos, ``per_identity`` photos each."""
    src = photos_dir("lfw-dev")
    chosen = [d for d in sorted(src.iterdir()) if d.is_dir() and len(list(d.glob("*.jpg"))) >= min_photos][:identities]
    for d in chosen:
        (dst / d.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(d.glob("*.jpg"))[:per_identity]:
            shutil.copy2(f, dst / d.name / f.name)
    return dst


@pytest.fixture(scope="session")
def people_small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """people-small/train scanned once: 5 identities, 9 photos, one face each."""
    return scanned_db(tmp_path_factory, photos_dir("people-small/train"), "people_small")


@pytest.fixture()
def people_small_lib(people_small_db: Path, tmp_path: Path) -> Iterator[Library]:
    """A private, writable copy of the scanned people-small library."""
    yield from library_copy(people_small_db, tmp_path)


@pytest.fixture(scope="session")
def lfw_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 LFW identities x 6 photos, copied so tests may add/move files."""
    return lfw_subset(tmp_path_factory.mktemp("lfw") / "photos")


@pytest.fixture(scope="session")
def lfw_db(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scanned_db(tmp_path_factory, lfw_root, "lfw_db")


@pytest.fixture()
def lfw_lib(lfw_db: Path, tmp_path: Path) -> Iterator[Library]:
    """A private, writable copy of the scanned LFW subset library (root = lfw_root)."""
    yield from library_copy(lfw_db, tmp_path)


def face_count(lib: Library) -> int:
    from sqlalchemy import func

    with lib.session() as s:
        return s.scalar(select(func.count()).select_from(Face)) or 0


def faces_in(lib: Library, prefix: str) -> list[int]:
    """Ids of the faces in photos whose path starts with ``prefix``, in order."""
    with lib.session() as s:
        return list(s.scalars(select(Face.id).join(Photo).where(Photo.path.like(f"{prefix}%")).order_by(Face.id)))
