"""One settings object for the whole organizer, with documented defaults.

Every value can be overridden by an environment variable (``ORGANIZER_<NAME>``) or by
the matching CLI flag; the CLI and the dashboard both build a :class:`Settings` and pass
it down, so nothing reads the environment behind the caller's back.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


def default_db_url() -> str:
    """The library file lives in the user's data folder, not in the photo folder.

    Writing into the photo folder would touch the user's originals' tree (and fail on a
    read-only share); one per-user file also lets ``organizer dashboard`` find the library
    that ``organizer scan`` made without any flag.
    """
    env = os.environ.get("ORGANIZER_DB")
    if env:
        return env
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'organizer' / 'library.db'}"


def normalise_db_url(value: str) -> str:
    """Accept a plain file path as well as an SQLAlchemy URL."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


@dataclass(frozen=True)
class Settings:
    db_url: str = field(default_factory=default_db_url)

    # --- scanning -------------------------------------------------------------------
    #: face detector: "hog" (fast, CPU) or "cnn" (more accurate, very slow without a GPU)
    model: str = "hog"
    #: how many times the detector upsamples; 1 finds faces down to ~40 px
    upsample: int = 1
    #: longest side in pixels an image is decoded to before detection. 1600 keeps faces of
    #: ~100 px in a 12 MP original detectable (with upsample 1) at a fifth of the work.
    max_size: int = 1600
    #: worker processes; 0 means one per CPU core
    workers: int = 0
    #: photos per database commit; a crash loses at most this many photos' work
    batch_size: int = 16
    #: images with more pixels than this are refused as decompression bombs
    max_pixels: int = 180_000_000
    #: side of the stored face thumbnail (JPEG), in pixels
    thumb_size: int = 128

    # --- clustering ------------------------------------------------------------------
    #: DBSCAN radius on 128-d dlib embeddings (see README: measured on lfw-dev)
    eps: float = 0.40
    min_samples: int = 2

    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)

    def with_overrides(self, **kwargs: object) -> "Settings":
        """A copy with the given non-None values replaced (handy for CLI flags)."""
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})

    @classmethod
    def from_env(cls) -> "Settings":
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"ORGANIZER_{f.name.upper()}")
            if raw is None or f.name == "db_url":
                continue
            kind = type(getattr(cls(), f.name))
            values[f.name] = kind(raw)
        return cls(**values)
