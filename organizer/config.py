"""One settings object for the whole organizer, with documented defaults.

Every value can be overridden by an environment variable (``ORGANIZER_<NAME>``) or by
the matching CLI flag; the CLI and the dashboard both build a :class:`Settings` and pass
it down, so nothing reads the environment behind the caller's back.

Each setting is declared once, as a field of :class:`Settings` whose metadata holds its
parser (type and allowed range), help text and flag. :meth:`Settings.from_env` and the
CLI's flags both go through that parser, so ``ORGANIZER_WORKERS=two`` and
``--workers two`` are refused by the same code with the same words.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import SettingError

ENV_PREFIX = "ORGANIZER_"


class BadValue(ValueError):
    """A value a setting does not take; the message says why, without the value itself
    (the caller knows whether it came from a flag or a variable and names it)."""


@dataclass(frozen=True)
class Number:
    """A whole number (or, with ``kind=float``, a finite number) within bounds."""

    low: float | None = None
    high: float | None = None
    kind: type = int
    #: the low bound itself is not allowed (``eps`` must be greater than 0)
    low_open: bool = False

    def __call__(self, text: str) -> Any:
        if self.kind is int:
            # int() also takes "1_600" and non-ASCII digits; a setting is typed by a person
            if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
                raise BadValue("is not a whole number")
            value: float = int(text)
        else:
            try:
                value = float(text)
            except ValueError:
                raise BadValue("is not a number") from None
            if not math.isfinite(value):
                raise BadValue("is not a finite number")
        if self.low is not None and self.low_open and value <= self.low:
            raise BadValue(f"must be greater than {self._n(self.low)}")
        if self.low is not None and not self.low_open and value < self.low:
            raise BadValue(f"must be {self._n(self.low)} or more")
        if self.high is not None and value > self.high:
            raise BadValue(f"must be {self._n(self.high)} or less")
        return value

    def _n(self, x: float) -> str:
        return f"{x:g}"

    def allowed(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            low = f"greater than {self._n(self.low)}" if self.low_open else f"from {self._n(self.low)}"
            return f"{what} {low} {'and at most' if self.low_open else 'to'} {self._n(self.high)}"
        if self.low is not None:
            if self.low_open:
                return f"{what} greater than {self._n(self.low)}"
            return f"{what}, {self._n(self.low)} or more"
        return what


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def __call__(self, text: str) -> str:
        if text not in self.options:
            raise BadValue("is not one of the choices")
        return text

    def allowed(self) -> str:
        return "one of " + ", ".join(self.options)


class DbUrl:
    """A file path or an SQLAlchemy URL (see :func:`normalise_db_url`)."""

    def __call__(self, text: str) -> str:
        url = normalise_db_url(text)
        if url in ("sqlite://", "sqlite:///:memory:") or url.startswith("sqlite:///:memory:?"):
            raise BadValue("is an in-memory database, which forgets everything when the command ends")
        return url

    def allowed(self) -> str:
        return "a library file path or a database URL such as sqlite:////path/library.db"


@dataclass(frozen=True)
class Spec:
    """How one setting is typed by a person: parser, help, and the flag that sets it."""

    parse: Number | Choice | DbUrl
    help: str
    flag: str | None = None
    metavar: str | None = None
    #: how the default reads in help and messages, when its value alone does not say it
    default_text: str | None = None
    #: the environment variable, when it is not ORGANIZER_<NAME>
    env: str | None = None


def _setting(default: Any, spec: Spec) -> Any:
    return field(default=default, metadata={"spec": spec})


def default_db_url(environ: Mapping[str, str] | None = None) -> str:
    """The library file lives in the user's data folder, not in the photo folder.

    Writing into the photo folder would touch the user's originals' tree (and fail on a
    read-only share); one per-user file also lets ``organizer dashboard`` find the library
    that ``organizer scan`` made without any flag. ``ORGANIZER_DB`` is read here too (for
    ``alembic upgrade head`` from the repo root), through the same check as ``--db``.
    """
    environ = os.environ if environ is None else environ
    env = read_env(environ, "db_url")
    if env is not None:
        return str(env)
    base = Path(environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'organizer' / 'library.db'}"


_SCHEME_ONLY = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:/(?!/)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def normalise_db_url(value: str) -> str:
    """Accept a plain file path as well as an SQLAlchemy URL; refuse what is neither.

    A URL is checked as far as it can be without connecting (it parses, the port is a
    number, the database type exists), so a typo gives one line here instead of a
    traceback at the first query. Whether the driver is installed is checked when the
    library is opened (:func:`organizer.db.make_engine`), where that is the problem.
    """
    text = value.strip()
    if not text:
        raise BadValue("is empty")
    if "://" not in text:
        if _SCHEME_ONLY.match(text):  # "sqlite:/x": a URL missing a slash, not a folder named "sqlite:"
            raise BadValue("looks like a URL but a URL starts with TYPE:// (a file path starting so: write ./ first)")
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    if not _URL.match(text):
        raise BadValue("is not a database URL (they look like sqlite:////path/library.db)")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
        port = url.port  # parsed lazily by some versions
    except (ArgumentError, ValueError):
        raise BadValue("is not a valid database URL (is the port a number? are the brackets of an IPv6 "
                       "address closed?)") from None
    del port
    backend = url.get_backend_name()
    if backend == "file":
        path = urlsplit(text).path or "/path/library.db"
        raise BadValue(f"is a file: URL, not a database URL; give the path itself ({path}) or sqlite:///{path}")
    try:
        url.get_dialect()
    except ArgumentError:
        raise BadValue(f"names a database type or driver that SQLAlchemy does not have ({url.drivername}; "
                       "known types: sqlite, postgresql, mysql, mariadb, mssql, oracle)") from None
    if backend == "sqlite" and (url.host or url.port):
        raise BadValue("is not a valid SQLite URL: sqlite:///relative/file.db or sqlite:////absolute/file.db "
                       "(three slashes, then the path)")
    return text


@dataclass(frozen=True)
class Settings:
    db_url: str = field(default_factory=default_db_url, metadata={"spec": Spec(
        DbUrl(), "library database: a file path or SQLAlchemy URL", flag="--db", env="ORGANIZER_DB",
        metavar="URL_OR_FILE", default_text="~/.local/share/organizer/library.db")})

    # --- scanning -------------------------------------------------------------------
    #: face detector: "hog" (fast, CPU) or "cnn" (more accurate, very slow without a GPU)
    model: str = _setting("hog", Spec(Choice(("hog", "cnn")), "face detector; cnn is slow on a CPU", flag="--model"))
    #: how many times the detector upsamples; 1 finds faces down to ~40 px. Each step is 4x
    #: the pixels (and the memory), so 4 already means 256x the work of 0.
    upsample: int = _setting(1, Spec(Number(0, 4), "detector upsampling, finds smaller faces", flag="--upsample"))
    #: longest side in pixels an image is decoded to before detection. 1600 keeps faces of
    #: ~100 px in a 12 MP original detectable (with upsample 1) at a fifth of the work.
    #: Below 100 px no face is big enough to detect, and 0 made every photo "corrupt".
    max_size: int = _setting(1600, Spec(Number(100), "longest side a photo is decoded to", flag="--max-size",
                                        metavar="PX"))
    #: worker processes; 0 (the default) means one per CPU core. A person types 1 or more:
    #: more than 256 would start that many copies of the detector models (~100 MB each).
    workers: int = _setting(0, Spec(Number(1, 256), "worker processes", flag="--workers",
                                    default_text="one per CPU core"))
    #: photos per database commit; a crash loses at most this many photos' work
    batch_size: int = _setting(16, Spec(Number(1), "photos per database commit"))
    #: images with more pixels than this are refused as decompression bombs; below 1 MP
    #: ordinary photos would be refused as bombs
    max_pixels: int = _setting(180_000_000, Spec(Number(1_000_000), "largest image accepted, in pixels"))
    #: side of the stored face thumbnail (JPEG), in pixels
    thumb_size: int = _setting(128, Spec(Number(32, 1024), "side of the stored face thumbnails, in pixels"))

    # --- clustering ------------------------------------------------------------------
    #: DBSCAN radius of the compact grouping rule (``organizer.grouping.GroupingRule.eps``;
    #: see README: measured on lfw-dev); distances between dlib embeddings stay below 2
    eps: float = _setting(0.42, Spec(Number(0, 2, kind=float, low_open=True),
                                     "DBSCAN radius of the compact grouping rule (measured on lfw-dev; "
                                     "smaller = stricter groups)",
                                     flag="--eps"))
    min_samples: int = _setting(2, Spec(Number(1), "faces needed to start a group", flag="--min-samples"))

    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)

    def with_overrides(self, **kwargs: Any) -> Settings:
        """A copy with the given non-None values replaced (handy for CLI flags)."""
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings with every ``ORGANIZER_<NAME>`` variable applied.

        A variable that is set but empty counts as unset (``ORGANIZER_WORKERS= organizer
        scan`` is how a shell unsets one for a single command). A bad value raises
        :class:`SettingError` naming the variable and what it takes.
        """
        env = os.environ if environ is None else environ
        values = {f.name: read_env(env, f.name) for f in fields(cls)}
        values["db_url"] = values["db_url"] or default_db_url(env)
        return cls(**{k: v for k, v in values.items() if v is not None})


def spec(name: str) -> Spec:
    """The declaration of the setting ``name`` (a :class:`Settings` field)."""
    for f in fields(Settings):
        if f.name == name:
            return f.metadata["spec"]
    raise KeyError(name)


def env_name(name: str) -> str:
    return spec(name).env or ENV_PREFIX + name.upper()


def default_text(name: str) -> str:
    s = spec(name)
    if s.default_text:
        return s.default_text
    f = next(f for f in fields(Settings) if f.name == name)
    return f"{f.default:g}" if isinstance(f.default, float) else str(f.default)


def read_env(environ: Mapping[str, str], name: str) -> Any:
    """The parsed value of the variable for setting ``name``, None when it is unset."""
    var = env_name(name)
    raw = environ.get(var)
    if raw is None or raw == "":
        return None
    s = spec(name)
    try:
        return s.parse(raw)
    except BadValue as exc:
        raise SettingError(f"the environment variable {var}={hide_password(raw)!r} {exc}; allowed: {s.parse.allowed()} "
                           f"(unset it for the default, {default_text(name)})") from None


def hide_password(text: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``, for messages."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", text)
