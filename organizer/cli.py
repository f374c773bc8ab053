"""The command line: parses arguments, calls the library API, prints.

No logic lives here. Every error the user can cause ends in one line on stderr and a
non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import Settings, normalise_db_url
from .db import Library
from .errors import OrganizerError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (and exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def settings_from(args: argparse.Namespace) -> Settings:
    base = Settings.from_env()
    db = getattr(args, "db", None)
    return base.with_overrides(db_url=normalise_db_url(db) if db else None)


def open_library(args: argparse.Namespace) -> Library:
    return Library.open(settings_from(args).db_url)


# --- commands ------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .scanner import scan

    settings = settings_from(args).with_overrides(
        workers=args.workers, model=args.model, upsample=args.upsample, max_size=args.max_size)
    lib = Library.open(settings.db_url)
    bar = None

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=p.total, unit="photo", dynamic_ncols=True, disable=p.total == 0)
        bar.set_postfix(faces=p.faces, failed=p.failed, refresh=False)
        bar.update(p.done - bar.n)

    try:
        report = scan(lib, args.photo_dir, settings, progress, new_root=args.new_root)
    except KeyboardInterrupt:
        if bar:
            bar.close()
        print("scan interrupted: finished photos are saved; run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        if bar:
            bar.close()
    print(f"scanned {report.root}: {report.summary()}")
    if report.errors and not args.quiet:
        shown = report.errors[:10]
        print(f"{len(report.errors)} file(s) could not be read:")
        for path, reason in shown:
            print(f"  {path}: {reason}")
        if len(report.errors) > len(shown):
            print("  ... (organizer stats --failed lists them all)")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from .scanner import failed_photos, library_stats

    lib = open_library(args)
    st = library_stats(lib)
    print(f"library:  {lib.engine.url.render_as_string(hide_password=True)}")
    print(f"root:     {st.root or '(not scanned yet)'}")
    print(f"photos:   {st.photos} ({st.photos_ok} ok, {st.photos_failed} failed, {st.photos_missing} missing)")
    print(f"faces:    {st.faces} ({st.faces_named} named, {st.faces_confirmed} confirmed by you)")
    print(f"people:   {st.people}")
    print(f"clusters: {st.clusters}")
    print(f"last scan: {st.last_scan or 'never'}")
    if args.failed:
        rows = failed_photos(lib)
        print(f"\nfailed photos ({len(rows)}):")
        for path, reason in rows:
            print(f"  {path}: {reason}")
    return EXIT_OK


def cmd_upgrade(args: argparse.Namespace) -> int:
    from .db import current_revision, head_revision

    lib = open_library(args)
    print(f"library schema at revision {current_revision(lib.engine)} (newest: {head_revision()})")
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL_OR_FILE",
                   help="library database: a file path or SQLAlchemy URL (default: $ORGANIZER_DB or "
                        "~/.local/share/organizer/library.db)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="organizer", description="Find every face in a photo folder and name the people in it.")
    parser.add_argument("--version", action="version", version="organizer 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("scan", help="find and embed every face in a photo folder (incremental)")
    p.add_argument("photo_dir", help="the folder of photos to scan (sub-folders included)")
    _add_db(p)
    p.add_argument("--workers", type=_positive_int, help="worker processes (default: one per CPU core)")
    p.add_argument("--model", choices=["hog", "cnn"], help="face detector (default hog; cnn is slow on a CPU)")
    p.add_argument("--upsample", type=_non_negative_int, help="detector upsampling, finds smaller faces (default 1)")
    p.add_argument("--max-size", type=_positive_int, metavar="PX", help="longest side a photo is decoded to (default 1600)")
    p.add_argument("--new-root", action="store_true", help="the library's photos moved to PHOTO_DIR: re-point it")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("stats", help="photos, faces, people and failures in the library")
    _add_db(p)
    p.add_argument("--failed", action="store_true", help="list every photo that could not be read, with the reason")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("upgrade", help="upgrade the library's schema to this version (also done on open)")
    _add_db(p)
    p.set_defaults(func=cmd_upgrade)

    # (more command groups are added above this line)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except OrganizerError as exc:
        print(f"organizer: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("organizer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
