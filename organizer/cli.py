"""The command line: parses arguments, calls the library API, prints.

No logic lives here. Every error the user can cause ends in one line on stderr and a
non-zero exit code, never a traceback.

Each command is declared once, next to its handler (``@command(name, help, *arguments)``,
like beets' ``Subcommand``); :data:`COMMANDS` keeps them in the order ``--help`` lists
them. A flag that sets a :class:`~organizer.config.Settings` value is ``setting(name)``:
its type, range, help and default come from that setting's declaration, so the flag and
the ``ORGANIZER_*`` variable are checked by the same parser. Other defaults are written
once, in the argument, and shown through argparse's ``%(default)s``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import config
from .config import Settings
from .db import Library
from .errors import OrganizerError

if TYPE_CHECKING:
    from .browse import FaceInfo, PersonSummary
    from .scanner import ScanProgress

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _flag_type(parse: config.Number | config.DbUrl) -> Callable[[str], Any]:
    """A setting's own parser as an argparse type: the flag and the environment variable
    are checked by the same code (config.Settings declares both)."""
    def check(text: str) -> object:
        try:
            return parse(text)
        except config.BadValue as exc:
            raise argparse.ArgumentTypeError(f"{config.hide_password(text)!r} {exc}") from None

    # argparse names a type in some messages, and tests tell numbers by it
    kind = "int" if isinstance(parse, config.Number) and parse.kind is int else "float"
    check.__name__ = kind if isinstance(parse, config.Number) else "url"
    return check


# the counts, ids and sizes that are not settings, checked by the settings' own number parser
_positive_int = _flag_type(config.Number(1))
_non_negative_int = _flag_type(config.Number(0))
_positive_float = _flag_type(config.Number(0, kind=float, low_open=True))


def _add_setting(p: argparse.ArgumentParser, name: str) -> None:
    """The flag of the setting ``name``, typed, ranged and described by its declaration."""
    spec = config.spec(name)
    assert spec.flag, name
    extra: dict[str, Any] = {}
    allowed = f"; {spec.parse.allowed()}" if isinstance(spec.parse, config.Number) else ""
    if isinstance(spec.parse, config.Choice):
        extra["choices"] = list(spec.parse.options)  # argparse's own "invalid choice" message
    else:
        extra["type"] = _flag_type(spec.parse)
    p.add_argument(spec.flag, dest=name, metavar=spec.metavar, **extra,
                   help=f"{spec.help}{allowed} (default: ${config.env_name(name)} or {config.default_text(name)})")


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings, with the flags given on this command line on top."""
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    return Settings.from_env().with_overrides(**flags)


def open_library(args: argparse.Namespace) -> Library:
    return Library.open(settings_from(args).db_url)


# --- declaring commands ------------------------------------------------------------------

#: one argument of a command: adds itself to the command's parser
Argument = Callable[[argparse.ArgumentParser], object]
Handler = Callable[[argparse.Namespace], int]


def arg(*names: str, **options: Any) -> Argument:
    """An ``add_argument(*names, **options)`` kept for the command that lists it."""
    return lambda p: p.add_argument(*names, **options)


def setting(name: str) -> Argument:
    """The flag of the :class:`Settings` field ``name`` (see :func:`_add_setting`)."""
    return lambda p: _add_setting(p, name)


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    arguments: tuple[Argument, ...]
    #: extra values the handler finds in ``args`` (one handler, two commands: hide/unhide)
    defaults: Mapping[str, object]


#: every command, in the order they were declared (the order of ``organizer --help``)
COMMANDS: list[Command] = []


def command(name: str, help: str, *arguments: Argument, **defaults: object) -> Callable[[Handler], Handler]:
    """Declare the command ``name`` with the decorated function as its handler."""
    def register(handler: Handler) -> Handler:
        COMMANDS.append(Command(name, help, handler, arguments, defaults))
        return handler
    return register


def _limit(default: int, what: str) -> Argument:
    return arg("--limit", type=_positive_int, default=default, help=f"{what} shown (default %(default)s)")


def _offset(what: str) -> Argument:
    return arg("--offset", type=_non_negative_int, default=0, help=f"skip this many {what}")


def _to(help: str) -> Argument:
    return arg("--to", required=True, metavar="NAME", help=help)


DB = setting("db_url")
QUIET = arg("-q", "--quiet", action="store_true", help="no progress bar")
FACES = arg("faces", type=_positive_int, nargs="+", metavar="FACE_ID")
CLUSTER_ID = arg("cluster", type=_positive_int, metavar="CLUSTER_ID")
NAME = arg("name", metavar="NAME")
FORCE = arg("--force", action="store_true",
            help="do it even if it gives one person two faces of one photo (normally refused)")
LEFT_OUT = arg("--left-out", type=_positive_int, nargs="+", default=[], metavar="FACE_ID",
               help="faces shown with these that are not the person (remembered as \"not this person\")")


# --- commands ------------------------------------------------------------------------


@command("scan", "find and embed every face in a photo folder (incremental)",
         arg("photo_dir", help="the folder of photos to scan (sub-folders included)"),
         DB, setting("workers"), setting("model"), setting("upsample"), setting("max_size"),
         arg("--new-root", action="store_true", help="the library's photos moved to PHOTO_DIR: re-point it"),
         arg("--no-cluster", action="store_true",
             help="do not group new faces after the scan (run `organizer cluster` later)"),
         QUIET)
def cmd_scan(args: argparse.Namespace) -> int:
    from .scanner import scan

    settings = settings_from(args)
    lib = Library.open(settings.db_url)
    bar = _ScanBar(args.quiet)
    try:
        report = scan(lib, args.photo_dir, settings, bar, new_root=args.new_root)
    except KeyboardInterrupt:
        bar.close()
        print("scan interrupted: finished photos are saved; run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(f"scanned {report.root}: {report.summary()}")
    if not args.no_cluster:
        from .clustering import cluster_after_scan

        grouped = cluster_after_scan(lib, report, settings=settings)
        if grouped is not None:
            print(grouped.summary())
    if report.errors and not args.quiet:
        _print_unreadable(report.errors)
    return EXIT_OK


class _ScanBar:
    """The scan's progress callback: a tqdm bar, made at the first report (when the
    number of photos to read is known); nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, p: ScanProgress) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total, unit="photo", dynamic_ncols=True, disable=p.total == 0)
        self.bar.set_postfix(faces=p.faces, failed=p.failed, refresh=False)
        self.bar.update(p.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_unreadable(errors: Sequence[tuple[str, str]], most: int = 10) -> None:
    print(f"{len(errors)} file(s) could not be read:")
    for path, reason in errors[:most]:
        print(f"  {path}: {reason}")
    if len(errors) > most:
        print("  ... (organizer stats --failed lists them all)")


@command("stats", "photos, faces, people and failures in the library", DB,
         arg("--failed", action="store_true", help="list every photo that could not be read, with the reason"))
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


@command("upgrade", "upgrade the library's schema to this version (also done on open)", DB)
def cmd_upgrade(args: argparse.Namespace) -> int:
    from .db import current_revision, head_revision

    lib = open_library(args)
    print(f"library schema at revision {current_revision(lib.engine)} (newest: {head_revision()})")
    return EXIT_OK


@command("resemble", "who does CHILD look like? scores with intervals and evidence",
         arg("child", help="the person to compare (a name)"),
         arg("--to", nargs="+", required=True, metavar="NAME", help="the candidates (parents, grandparents, ...)"),
         arg("--age-matched", action="store_true",
             help="compare with the candidates' photos at the child's age (needs birth dates)"),
         arg("--evidence", type=_non_negative_int, default=3, metavar="N",
             help="most similar face pairs shown per candidate (default %(default)s)"),
         DB)
def cmd_resemble(args: argparse.Namespace) -> int:
    from .resemblance import resemble

    lib = open_library(args)
    res = resemble(lib, args.child, args.to, age_matched=args.age_matched, evidence=args.evidence)
    cal = res.calibration
    print(f"who does {res.child_name} look like?{'  (age-matched)' if res.age_matched else ''}")
    print(f"{'rank':>4}  {'candidate':<28} {'score':>6}  {'95% interval':>13}  {'pctile':>6}  {'first in':>8}  faces")
    for c in res.candidates:
        print(f"{c.rank:>4}  {c.name[:28]:<28} {c.score:>6.0f}  {c.low:>6.0f} .. {c.high:<4.0f}  {c.percentile:>6.0f}  "
              f"{c.p_best * 100:>7.0f}%  {c.child_faces}x{c.candidate_faces}")
        if c.note:
            print(f"      note: {c.note}")
        for e in c.evidence:
            dated = e.child_age is not None and e.candidate_age is not None
            ages = f"  (ages {e.child_age:g} / {e.candidate_age:g})" if dated else ""
            print(f"      face {e.child_face_id} ~ face {e.candidate_face_id}: distance {e.distance:.3f}{ages}")
    print(res.verdict)
    for note in res.notes:
        print(f"note: {note}")
    print(f"score 0 = as alike as unrelated people in this library, 100 = as alike as two sets of photos of one "
          f"person (calibration: {cal.source})")
    return EXIT_OK


@command("lookalike", "the nearest named people to each face in a photo",
         arg("photo", help="a photo file"),
         arg("--top", type=_positive_int, default=3, metavar="K", help="people listed per face (default %(default)s)"),
         DB)
def cmd_lookalike(args: argparse.Namespace) -> int:
    from .resemblance import lookalike

    lib = open_library(args)
    res = lookalike(lib, args.photo, top=args.top)
    print(f"{res.source}: {len(res.faces)} face(s), compared with {res.people} named people "
          f"(same-person distance {res.threshold:g})")
    for f in res.faces:
        top, right, bottom, left = f.box
        head = f"face {f.index} at ({left},{top})-({right},{bottom})"
        if f.nobody_close:
            nearest = f" (nearest: {f.matches[0].name} at {f.matches[0].distance:.3f})" if f.matches else ""
            print(f"{head}: unknown - nobody close{nearest}")
            continue
        print(f"{head}:")
        for m in f.matches:
            mark = "" if m.distance <= res.threshold else "  (not close)"
            print(f"    {m.name:<28} distance {m.distance:.3f}  closest face {m.face_id}{mark}")
    return EXIT_OK


# --- people: clustering, labelling, suggestions (issue 3) -------------------------------


def _person(lib: Library, text: str) -> PersonSummary:
    """The person the user typed: a name, or an id when nobody has that name."""
    from .browse import find_person

    return find_person(lib, text)


def _face_line(f: FaceInfo) -> str:
    who = ""
    if f.person_name:
        who = f"  {f.person_name} ({f.assignment}{'' if f.confidence is None else f' {f.confidence:.2f}'})"
    cluster = f"  cluster {f.cluster_id}" if f.cluster_id else ""
    return f"  face {f.id:>7}  {f.photo_path}{who}{cluster}"


@command("cluster", "group the unnamed faces into clusters (keeps all your labels)",
         setting("eps"), setting("min_samples"), DB)
def cmd_cluster(args: argparse.Namespace) -> int:
    from .clustering import cluster_faces

    settings = settings_from(args)
    lib = Library.open(settings.db_url)
    report = cluster_faces(lib, eps=args.eps, min_samples=args.min_samples, settings=settings)
    print(report.summary())
    return EXIT_OK


@command("people", "list named people with face and photo counts",
         arg("--hidden", action="store_true", help="include hidden people"),
         arg("--search", metavar="TEXT", help="only names containing TEXT"),
         DB)
def cmd_people(args: argparse.Namespace) -> int:
    from .browse import list_people

    lib = open_library(args)
    people = list_people(lib, include_hidden=args.hidden, search=args.search or "")
    if not people:
        print("no people yet: run `organizer cluster`, then `organizer clusters` and `organizer name`")
        return EXIT_OK
    print(f"{'id':>5}  {'name':<30} {'faces':>6} {'photos':>6}  born")
    for p in people:
        flags = "  (hidden)" if p.hidden else ""
        born = p.birth_date.isoformat() if p.birth_date else "-"
        print(f"{p.id:>5}  {p.name[:30]:<30} {p.face_count:>6} {p.photo_count:>6}  {born}{flags}")
    return EXIT_OK


@command("show-person", "a person's faces (ids for remove/move/cover)",
         arg("name", help="the person's name"), _limit(200, "faces"), DB)
def cmd_show_person(args: argparse.Namespace) -> int:
    from .browse import person_faces

    lib = open_library(args)
    p = _person(lib, args.name)
    print(f"{p.name} (id {p.id}): {p.face_count} faces in {p.photo_count} photos, "
          f"{p.confirmed_count} confirmed by you; cover face {p.cover_face_id or '-'}"
          f"{'; hidden' if p.hidden else ''}")
    for f in person_faces(lib, p.id, limit=args.limit, include_suggested=True):
        print(_face_line(f))
    return EXIT_OK


@command("clusters", "groups of unnamed faces, largest first", _limit(30, "groups"), _offset("groups"), DB)
def cmd_clusters(args: argparse.Namespace) -> int:
    from .browse import count_clusters, list_clusters

    lib = open_library(args)
    total = count_clusters(lib)
    rows = list_clusters(lib, limit=args.limit, offset=args.offset)
    shown = f" (showing {args.offset + 1}-{args.offset + len(rows)})" if rows else ""
    print(f"{total} groups of unnamed faces{shown}")
    for c in rows:
        hint = f"  maybe {c.suggested_person_name} ({c.confidence:.2f})" if c.suggested_person_name else ""
        more = " ..." if c.size > len(c.face_ids) else ""
        print(f"  cluster {c.id:>6}: {c.size:>4} faces  [{' '.join(map(str, c.face_ids))}{more}]{hint}")
    return EXIT_OK


@command("show-cluster", "the faces of one cluster", CLUSTER_ID, _limit(200, "faces"), DB)
def cmd_show_cluster(args: argparse.Namespace) -> int:
    from .browse import faces_in_cluster, get_cluster

    lib = open_library(args)
    c = get_cluster(lib, args.cluster)
    hint = f"; maybe {c.suggested_person_name} ({c.confidence:.2f})" if c.suggested_person_name else ""
    print(f"cluster {c.id}: {c.size} unnamed faces{hint}")
    for f in faces_in_cluster(lib, c.id, limit=args.limit):
        print(_face_line(f))
    return EXIT_OK


@command("unassigned", "faces that belong to nobody yet", _limit(100, "faces"), _offset("faces"),
         arg("--stacks", action="store_true",
             help="in stacks of look-alikes, biggest first (name one with `organizer assign IDS --to NAME`)"),
         DB)
def cmd_unassigned(args: argparse.Namespace) -> int:
    from .browse import count_unassigned, unassigned_faces

    lib = open_library(args)
    print(f"{count_unassigned(lib)} faces belong to nobody yet")
    if args.stacks:
        return _print_stacks(lib, args.limit, args.offset)
    for f in unassigned_faces(lib, limit=args.limit, offset=args.offset):
        print(_face_line(f))
    return EXIT_OK


def _print_stacks(lib: Library, limit: int, offset: int) -> int:
    from .stacks import count_stacks, unassigned_stacks

    stacks = unassigned_stacks(lib, limit=limit, offset=offset)
    print(f"{count_stacks(lib)} stacks of look-alikes; --left-out IDS on `assign` says which of a stack are not them")
    for st in stacks:
        print(f"stack of {st.size}: {' '.join(map(str, st.face_ids))}")
    return EXIT_OK


@command("name", "name a cluster (an existing name adds the faces to that person)",
         CLUSTER_ID, arg("name", help="the person's name (quote names with spaces)"), LEFT_OUT, FORCE, DB)
def cmd_name(args: argparse.Namespace) -> int:
    from .browse import get_person
    from .labelling import name_cluster

    lib = open_library(args)
    pid = name_cluster(lib, args.cluster, args.name, left_out=args.left_out, force=args.force)
    p = get_person(lib, pid)
    print(f"cluster {args.cluster} is {p.name} (now {p.face_count} faces)")
    return EXIT_OK


@command("assign", "confirm faces as a person (created if new)", FACES, _to("the person"), LEFT_OUT, FORCE, DB)
def cmd_assign(args: argparse.Namespace) -> int:
    from .browse import get_person
    from .labelling import assign_faces

    lib = open_library(args)
    pid = assign_faces(lib, args.faces, args.to, left_out=args.left_out, force=args.force)
    print(f"{len(set(args.faces))} face(s) confirmed as {get_person(lib, pid).name}")
    return EXIT_OK


@command("move", "move faces to another person (created if new)", FACES, _to("the person"), FORCE, DB)
def cmd_move(args: argparse.Namespace) -> int:
    from .browse import get_person
    from .labelling import move_faces

    lib = open_library(args)
    pid = move_faces(lib, args.faces, args.to, force=args.force)
    print(f"{len(set(args.faces))} face(s) moved to {get_person(lib, pid).name}")
    return EXIT_OK


@command("rename", "rename a person", arg("old", metavar="NAME"), arg("new", metavar="NEW_NAME"), DB)
def cmd_rename(args: argparse.Namespace) -> int:
    from .browse import get_person
    from .labelling import rename_person

    lib = open_library(args)
    p = _person(lib, args.old)
    rename_person(lib, p.id, args.new)
    print(f"renamed {p.name} to {get_person(lib, p.id).name}")
    return EXIT_OK


@command("merge", "merge person A into person B (A disappears)",
         arg("source", metavar="A"), arg("target", metavar="B"), FORCE, DB)
def cmd_merge(args: argparse.Namespace) -> int:
    from .labelling import merge_people

    lib = open_library(args)
    source, target = _person(lib, args.source), _person(lib, args.target)
    merge_people(lib, source.id, target.id, force=args.force)
    print(f"merged {source.name} into {target.name}")
    return EXIT_OK


@command("keep-apart", "A and B are different people: never asked \"same person?\" about them again",
         arg("source", metavar="A"), arg("target", metavar="B"), DB)
def cmd_keep_apart(args: argparse.Namespace) -> int:
    from .labelling import keep_apart

    lib = open_library(args)
    a, b = _person(lib, args.source), _person(lib, args.target)
    keep_apart(lib, a.id, b.id)
    print(f"{a.name} and {b.name} are different people (`organizer undo` takes it back)")
    return EXIT_OK


@command("hide", "hide a person from the people list", NAME, DB, hidden=True)
def cmd_hide(args: argparse.Namespace) -> int:
    from .labelling import set_hidden

    lib = open_library(args)
    p = _person(lib, args.name)
    set_hidden(lib, p.id, args.hidden)
    print(f"{p.name} is {'hidden' if args.hidden else 'shown again'}")
    return EXIT_OK


command("unhide", "show a hidden person again", NAME, DB, hidden=False)(cmd_hide)


@command("cover", "choose a person's cover face", NAME, arg("face", type=_positive_int, metavar="FACE_ID"), DB)
def cmd_cover(args: argparse.Namespace) -> int:
    from .labelling import set_cover

    lib = open_library(args)
    p = _person(lib, args.name)
    set_cover(lib, p.id, args.face)
    print(f"face {args.face} is the cover of {p.name}")
    return EXIT_OK


@command("born", "set a person's birth date (YYYY-MM-DD, or 'none')", NAME, arg("date", metavar="YYYY-MM-DD"), DB)
def cmd_born(args: argparse.Namespace) -> int:
    from .errors import InvalidRequest
    from .labelling import parse_birth_date, set_birth_date

    lib = open_library(args)
    try:
        birth = parse_birth_date(args.date)
    except InvalidRequest as exc:  # a malformed argument, like argparse's own: exit code 2
        raise UsageError(f"organizer born: {exc}") from None
    p = _person(lib, args.name)
    set_birth_date(lib, p.id, birth)
    print(f"{p.name}: born {birth.isoformat() if birth else 'unknown'}")
    return EXIT_OK


@command("remove", "take faces away from their person (remembered as 'not them')", FACES, DB)
def cmd_remove(args: argparse.Namespace) -> int:
    from .labelling import remove_faces

    lib = open_library(args)
    remove_faces(lib, args.faces)
    print(f"{len(set(args.faces))} face(s) removed from their person (they will not be suggested for them again)")
    return EXIT_OK


@command("not-a-face", "mark detections that are not faces", FACES, DB)
def cmd_not_face(args: argparse.Namespace) -> int:
    from .labelling import mark_not_face

    lib = open_library(args)
    mark_not_face(lib, args.faces)
    print(f"{len(set(args.faces))} detection(s) marked as not a face")
    return EXIT_OK


@command("split", "put faces into a new cluster of their own", FACES, DB)
def cmd_split(args: argparse.Namespace) -> int:
    from .labelling import split_faces

    lib = open_library(args)
    cid = split_faces(lib, args.faces)
    print(f"{len(set(args.faces))} face(s) now form cluster {cid}")
    return EXIT_OK


@command("undo", "undo the last N labelling operations (default 1)",
         arg("steps", type=_positive_int, nargs="?", default=1, metavar="N"), DB)
def cmd_undo(args: argparse.Namespace) -> int:
    from .labelling import undo

    lib = open_library(args)
    done = undo(lib, args.steps)
    if not done:
        print("nothing to undo")
    for text in done:
        print(f"undone: {text}")
    return EXIT_OK


@command("history", "recent labelling operations", _limit(20, "operations"), DB)
def cmd_history(args: argparse.Namespace) -> int:
    from .labelling import history

    lib = open_library(args)
    ops = history(lib, args.limit)
    if not ops:
        print("no operations yet")
    for op in ops:
        flag = "  (undone)" if op.undone else ""
        print(f"{op.id:>6}  {op.created_at:%Y-%m-%d %H:%M}  {op.description}{flag}")
    return EXIT_OK


@command("suggest", "who the unnamed faces might be, most confident first", _limit(20, "suggestions"), DB)
def cmd_suggest(args: argparse.Namespace) -> int:
    from .suggestions import all_suggestions

    lib = open_library(args)
    items = all_suggestions(lib)
    if not items:
        print("no suggestions: name some clusters first (organizer clusters / organizer name)")
        return EXIT_OK
    print(f"{len(items)} suggestion(s); answer with `organizer accept FACES --to NAME` or `organizer reject ...`")
    for it in items[:args.limit]:
        where = f"cluster {it.cluster_id}" if it.cluster_id else "face"
        print(f"  {it.person_name} ({it.confidence:.2f}, distance {it.distance:.2f}) <- {where}: "
              f"{' '.join(map(str, it.face_ids))}")
    return EXIT_OK


@command("accept", "accept a suggestion: the faces are NAME", FACES, _to("the suggested person"), FORCE, DB)
def cmd_accept(args: argparse.Namespace) -> int:
    from .suggestions import accept_suggestion

    lib = open_library(args)
    p = _person(lib, args.to)
    accept_suggestion(lib, args.faces, p.id, force=args.force)
    print(f"{len(set(args.faces))} face(s) confirmed as {p.name}")
    return EXIT_OK


@command("reject", "reject a suggestion: the faces are not NAME", FACES, _to("the suggested person"), DB)
def cmd_reject(args: argparse.Namespace) -> int:
    from .suggestions import reject_suggestion

    lib = open_library(args)
    p = _person(lib, args.to)
    reject_suggestion(lib, args.faces, p.id)
    print(f"noted: {len(set(args.faces))} face(s) are not {p.name}")
    return EXIT_OK


@command("review", "answer batch questions (all of one person's suggested faces at once), then "
         "\"same person?\" questions", DB)
def cmd_review(args: argparse.Namespace) -> int:
    lib = open_library(args)
    answered = _review_batches(lib)
    if answered is None:
        return EXIT_OK
    answered = _review_merges(lib, answered)
    if answered is not None:
        print(f"no more questions ({answered} answered)")
    return EXIT_OK


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip().lower()
    except EOFError:
        return "q"


def _stopped(answered: int) -> None:
    print(f"stopped ({answered} answered; `organizer undo` takes back the last one)")


def _review_batches(lib: Library) -> int | None:
    """Batch questions until none is left; the number answered, None when the user quit."""
    from .browse import get_faces
    from .labelling import SamePhotoConflict
    from .questions import accept_batch, next_batch_question, reject_batch

    skipped: set[int] = set()
    answered = 0
    while (q := next_batch_question(lib, skip_face_ids=skipped)) is not None:
        more = f" ({q.more} more after these)" if q.more else ""
        print(f"\nAre these {len(q.face_ids)} faces {q.person_name}?{more}"
              f"  known faces: {' '.join(map(str, q.evidence_face_ids)) or '-'}")
        for f in get_faces(lib, q.face_ids):
            print(_face_line(f))
        while True:
            answer = _ask("[y]es to all / [n]o to all / ids of faces that are not them, then yes to the rest"
                          " / [s]kip / [q]uit > ")
            left_out = _face_ids_in(answer, q.face_ids)
            if left_out is not None or answer[:1] in ("y", "n", "s", "q"):
                break
            print(f"  give y, n, s, q or face ids of this question ({q.face_ids[0]} ...)")
        try:
            if answer.startswith("q"):
                _stopped(answered)
                return None
            if answer.startswith("s"):
                skipped.update(q.face_ids)
                continue
            if answer.startswith("n"):
                done = reject_batch(lib, q.person_id, q.face_ids)
            else:
                out = left_out or []
                ticked = [f for f in q.face_ids if f not in out]
                done = (accept_batch(lib, q.person_id, ticked, out) if ticked
                        else reject_batch(lib, q.person_id, q.face_ids))
        except SamePhotoConflict as exc:  # the faces changed since the question was made
            print(f"  not done: {exc}")
            skipped.update(q.face_ids)
            continue
        print(f"  {done.description}")
        answered += 1
    return answered


def _face_ids_in(answer: str, offered: Sequence[int]) -> list[int] | None:
    """The face ids typed (spaces or commas between), when all are in the question."""
    parts = answer.replace(",", " ").split()
    if not parts or not all(p.isdigit() and len(p) < 19 for p in parts):
        return None
    ids = [int(p) for p in parts]
    return ids if set(ids) <= set(offered) else None


def _review_merges(lib: Library, answered: int) -> int | None:
    """"Same person?" for named people whose faces are very close; the number answered in
    all, None when the user quit."""
    from .labelling import keep_apart, merge_people
    from .questions import merge_questions

    for m in merge_questions(lib):
        print(f"\nSame person? {m.name_a} (faces {' '.join(map(str, m.faces_a))}) and "
              f"{m.name_b} (faces {' '.join(map(str, m.faces_b))}), distance {m.distance:.2f}")
        answer = _ask(f"[m]erge {m.name_a} into {m.name_b} / [d]ifferent people / [s]kip / [q]uit > ")
        if answer.startswith("q"):
            _stopped(answered)
            return None
        if answer.startswith("m"):
            merge_people(lib, m.person_a, m.person_b)
            print(f"  merged {m.name_a} into {m.name_b}")
        elif answer.startswith("d"):
            keep_apart(lib, m.person_a, m.person_b)
            print(f"  {m.name_a} and {m.name_b} are different people")
        else:
            continue
        answered += 1
    return answered


@command("slideshow", "export the photos of one person (or several) in date order: html, mp4 or folder",
         arg("name", help="the person (\"Grandma\")"),
         DB,
         arg("--with", dest="with_", action="append", default=[], metavar="NAME",
             help="another person; photos where they are all together (add --any for photos of either)"),
         arg("--any", action="store_true", help="photos of any of the people, not only of all of them together"),
         arg("--from", dest="date_from", metavar="DATE", help="first date: YYYY, YYYY-MM or YYYY-MM-DD"),
         arg("--to", dest="date_to", metavar="DATE", help="last date, inclusive (--to 2000 = to 31 Dec 2000)"),
         arg("--min-face", type=_non_negative_int, default=0, metavar="PX",
             help="skip photos where the person's face is smaller than PX pixels"),
         arg("--include-auto", action="store_true",
             help="also use faces the organizer recognised with high confidence (default: faces you confirmed)"),
         arg("--format", required=True, choices=["html", "mp4", "folder"],
             help="html: a folder that plays in a browser; mp4: a video; folder: copies of the originals"),
         arg("-o", "--output", required=True, metavar="OUT", help="the folder (html, folder) or .mp4 file to write"),
         arg("--size", metavar="WxH", help="output size (default 1280x720 for mp4, 1920x1080 for html)"),
         arg("--seconds", type=_positive_float, default=4.0, metavar="S",
             help="seconds per photo (default %(default)g)"),
         arg("--link", action="store_true", help="folder format: hard-link the originals instead of copying"),
         arg("--force", action="store_true", help="replace OUT if it exists"),
         QUIET)
def cmd_slideshow(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .slideshow import export_slideshow, select_photos

    lib = open_library(args)
    selection = select_photos(lib, [args.name, *args.with_], match="any" if args.any else "all",
                              date_from=args.date_from, date_to=args.date_to, min_face=args.min_face,
                              include_auto=args.include_auto)
    print(f"{len(selection)} photo(s): {selection.description}")
    bar = tqdm(total=len(selection), unit="photo", dynamic_ncols=True, disable=args.quiet)
    try:
        report = export_slideshow(selection, args.output, args.format, size=args.size, seconds=args.seconds,
                                  link=args.link, overwrite=args.force,
                                  progress=lambda done, total: bar.update(done - bar.n))
    finally:
        bar.close()
    print(report.summary())
    if report.undated:
        print(f"{len(report.undated)} photo(s) without a capture date are at the end:")
        for path in report.undated[:20]:
            print(f"  {path}")
        if len(report.undated) > 20:
            print(f"  ... and {len(report.undated) - 20} more")
    if selection.undated_excluded:
        print(f"{selection.undated_excluded} matching photo(s) without a date were left out by the date range")
    for path, reason in [*selection.unavailable, *report.skipped][:20]:
        print(f"skipped {path}: {reason}")
    return EXIT_OK


@command("dashboard", "label your library in the browser (Dash app)",
         DB,
         arg("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this computer only)"),
         arg("--port", type=_positive_int, default=8050, help="port (default %(default)s)"),
         arg("--password", nargs="?", const="", default=None, metavar="PASSWORD",
             help="ask browsers for this password (HTTP basic auth); without a value it is "
                  "asked for; default: $ORGANIZER_PASSWORD, else none"))
def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboard.app import serve

    password = _dashboard_password(args.password)
    serve(open_library(args), host=args.host, port=args.port, password=password)
    return EXIT_OK


def _dashboard_password(given: str | None) -> str | None:
    """--password's value; asked for when the flag has none (so it stays out of the shell
    history); without the flag, $ORGANIZER_PASSWORD or None (no password)."""
    import getpass
    import os

    password, source = given, "--password"
    if password == "":
        try:
            password = getpass.getpass("dashboard password: ")
        except EOFError:
            password = ""
    if password is None:
        password, source = os.environ.get("ORGANIZER_PASSWORD"), "ORGANIZER_PASSWORD"
    # an empty answer (or an ORGANIZER_PASSWORD= left empty) must not mean "no password":
    # whoever asked for one believes the dashboard is protected
    if password is not None and not password.strip():
        undo = "unset ORGANIZER_PASSWORD" if source == "ORGANIZER_PASSWORD" else "leave out --password"
        raise UsageError(f"organizer dashboard: the password from {source} is empty; "
                         f"give a real one, or {undo} to run without a password")
    return password


@command("forget", "delete a person's faces, embeddings and thumbnails for good (photos stay)",
         arg("name", nargs="?", metavar="NAME", help="the person to forget"),
         arg("--all-faces", action="store_true", help="forget every face in the library (people's names stay)"),
         arg("--yes", action="store_true", help="do not ask for confirmation (--all-faces)"),
         DB)
def cmd_forget(args: argparse.Namespace) -> int:
    from .privacy import forget_all_faces, forget_person

    if bool(args.name) == bool(args.all_faces):
        raise UsageError("organizer forget: give either a NAME or --all-faces (see organizer forget --help)")
    if args.all_faces and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("organizer forget --all-faces: add --yes to confirm deleting every face in the library")
        answer = input("Delete every face, embedding and thumbnail in the library (photos stay)? [y/N] ")
        if not answer.strip().lower().startswith("y"):
            print("nothing deleted")
            return EXIT_OK
    lib = open_library(args)
    report = forget_all_faces(lib) if args.all_faces else forget_person(lib, args.name)
    print(report.summary())
    if not report.bytes_purged and lib.engine.dialect.name == "sqlite":
        print("note: another program is using the library, so deleted bytes may remain in its log file; "
              "run the command again when it has closed", file=sys.stderr)
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="organizer", description="Find every face in a photo folder and name the people in it.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for c in COMMANDS:
        p = sub.add_parser(c.name, help=c.help)
        for add in c.arguments:
            add(p)
        p.set_defaults(func=c.handler, **c.defaults)
    return parser


def _cli_text(exc: OrganizerError) -> str:
    """The core's message, and for a same-photo refusal how to do it anyway here."""
    from .labelling import SamePhotoConflict

    return f"{exc} (add --force to do it anyway)" if isinstance(exc, SamePhotoConflict) else str(exc)


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
        print(f"organizer: {_cli_text(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("organizer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
