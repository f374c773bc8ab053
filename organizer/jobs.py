"""Long jobs, one way for every front end: a progress/cancel protocol and a job runner.

The core's long functions (a slideshow export, a regrouping, later a scan or video work)
take a :class:`Progress`: they call ``progress.step(done, total, what)`` as they go and
look at ``progress.cancelled`` where stopping is safe, then raise their own
:class:`Cancelled` error having left nothing half-written. The command line turns the
steps into a progress bar, the dashboard into a progress component, tests into a list
(:class:`ListProgress`) or nothing (:data:`NULL_PROGRESS`).

:class:`JobRunner` runs such a function in a background thread: one running job per key
(a second start is refused), the progress and the function's result kept on a
:class:`Job` for the front end to show, errors kept as one line, and the last few finished
jobs of each key kept (older ones are discarded, with their files).

Work folders of jobs carry their owner (:func:`owner_tag`: pid, process start time,
host), so that whoever comes next can tell the leftovers of a process that was killed
from those of one still running (:func:`remove_abandoned`).
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from .errors import InvalidRequest, OrganizerError

if TYPE_CHECKING:
    from .clustering import ClusterReport
    from .config import Settings
    from .db import Library
    from .scanner import ScanReport

log = logging.getLogger(__name__)
T = TypeVar("T")


# --- the protocol ---------------------------------------------------------------------------

class Cancelled(OrganizerError):
    """The job was cancelled; it left nothing half-done (the message says what stopped)."""


class JobRunning(InvalidRequest):
    """A job of this kind is running already (one at a time)."""


@runtime_checkable
class Progress(Protocol):
    """What a long core function reports to, and asks whether to stop."""

    def step(self, done: int, total: int, what: str = "") -> None:
        """``done`` of ``total`` units (photos, stages) are finished; ``what`` names the last."""

    @property
    def cancelled(self) -> bool:
        """True once the user asked to stop: stop at the next safe point."""


class NullProgress:
    """Reports nowhere and is never cancelled."""

    cancelled = False

    def step(self, done: int, total: int, what: str = "") -> None:
        pass


NULL_PROGRESS = NullProgress()


class CancelToken:
    """A cancel flag that can be set from another thread (a button, Ctrl-C, a test)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class ListProgress:
    """Keeps every step as ``(done, total, what)``; cancels itself after ``cancel_after``
    steps when given (what tests use to stop a job at a known point)."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.steps: list[tuple[int, int, str]] = []
        self.token = CancelToken()
        self._cancel_after = cancel_after

    def step(self, done: int, total: int, what: str = "") -> None:
        self.steps.append((done, total, what))
        if self._cancel_after is not None and len(self.steps) >= self._cancel_after:
            self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled


class _Adapted:
    """A Progress over an inner one and/or a ``(done, total)`` callback, also cancelled by
    an outside flag (a ``threading.Event`` or a :class:`CancelToken`)."""

    def __init__(self, inner: Progress | None, callback: Callable[[int, int], None] | None, cancel: Any) -> None:
        self._inner, self._callback, self._cancel = inner, callback, cancel

    def step(self, done: int, total: int, what: str = "") -> None:
        if self._inner is not None:
            self._inner.step(done, total, what)
        if self._callback is not None:
            self._callback(done, total)

    @property
    def cancelled(self) -> bool:
        if self._inner is not None and self._inner.cancelled:
            return True
        if self._cancel is None:
            return False
        is_set = getattr(self._cancel, "is_set", None)   # a threading.Event
        return bool(is_set() if is_set is not None else self._cancel.cancelled)


def as_progress(progress: Progress | Callable[[int, int], None] | None = None,
                cancel: threading.Event | CancelToken | None = None) -> Progress:
    """A :class:`Progress` from what older callers pass: a ``(done, total)`` callback and
    a ``threading.Event`` (or a :class:`CancelToken`). A Progress alone is returned as it
    is; with ``cancel`` as well, either one stops it."""
    if progress is None and cancel is None:
        return NULL_PROGRESS
    if isinstance(progress, Progress):
        return progress if cancel is None else _Adapted(progress, None, cancel)
    return _Adapted(None, progress, cancel)


# --- the runner -----------------------------------------------------------------------------

@dataclass(frozen=True)
class JobKind:
    """A kind of job: one of each key runs at a time."""

    key: str
    #: what the job does, in a failure message: "export" -> "export failed: ..."
    name: str
    #: the one-line refusal of a second start
    busy: str
    #: finished jobs of this kind kept for the front end (the older ones are discarded)
    keep: int = 3


@dataclass
class Job(Generic[T]):
    """One run of a core function: its progress while it runs, then its result or error.

    A job is also the :class:`Progress` its function reports to."""

    id: str
    kind: JobKind
    label: str = ""
    total: int = 0
    done: int = 0
    what: str = ""
    state: str = "running"            # running | done | failed | cancelled
    message: str = ""                 # one line: the failure, or what the front end says when done
    result: T | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    discard: Callable[[], None] | None = field(default=None, repr=False)
    _token: CancelToken = field(default_factory=CancelToken, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0

    def step(self, done: int, total: int, what: str = "") -> None:
        self.done, self.total, self.what = done, total, what

    @property
    def cancelled(self) -> bool:
        return self._token.cancelled

    def cancel(self) -> None:
        """Ask the job to stop at its next safe point."""
        self._token.cancel()


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__


class JobRunner:
    """Background jobs of one front end (a dashboard app, a CLI run, a test).

    ``start`` refuses a second running job of the same :class:`JobKind` key; the function
    runs in a daemon thread and gets the :class:`Job` as its progress; what it returns is
    kept in ``job.result`` (``describe(result)`` gives ``job.message``). An
    :class:`~organizer.errors.OrganizerError` becomes ``failed`` with its message, any
    other exception ``failed`` with "NAME failed: Type: message" (one line; the traceback
    goes to the log), :class:`Cancelled` becomes ``cancelled``. A job that does not end
    ``done`` has its ``discard`` called at once; a finished one when it is dropped.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job[Any]] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str | None) -> Job[Any] | None:
        with self._lock:
            return self._jobs.get(job_id or "")

    def jobs(self, kind: JobKind) -> list[Job[Any]]:
        """The kept jobs of ``kind``, oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if j.kind.key == kind.key]

    def running(self, kind: JobKind) -> Job[Any] | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.kind.key == kind.key and j.running), None)

    def latest(self, kind: JobKind) -> Job[Any] | None:
        found = self.jobs(kind)
        return found[-1] if found else None

    def check_free(self, kind: JobKind) -> None:
        """Raise :class:`JobRunning` if a job of ``kind`` runs (before preparing a new one)."""
        if self.running(kind) is not None:
            raise JobRunning(kind.busy)

    def start(self, kind: JobKind, work: Callable[[Progress], T], *, label: str = "", total: int = 0,
              describe: Callable[[T], str] | None = None, discard: Callable[[], None] | None = None) -> Job[T]:
        """Run ``work(job)`` in a background thread; returns the job at once."""
        job: Job[T] = Job(uuid.uuid4().hex, kind, label, total=total, discard=discard)
        with self._lock:
            if any(j.kind.key == kind.key and j.running for j in self._jobs.values()):
                raise JobRunning(kind.busy)
            self._jobs[job.id] = job
        thread = threading.Thread(target=self._run, args=(job, work, describe),
                                  name=f"{kind.key}-{job.id[:8]}", daemon=True)
        try:
            thread.start()
        except RuntimeError:   # no thread to be had: the job never ran, it must not look running
            with self._lock:
                del self._jobs[job.id]
            raise
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job[Any]:
        """The job once it has finished (or as it is after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None:
                raise InvalidRequest("no such job (finished jobs are kept only for a while)")
            if not job.running or (deadline is not None and time.monotonic() >= deadline):
                return job
            time.sleep(0.05)

    def cancel(self, job_id: str | None) -> bool:
        """Ask a running job to stop; False when there is no such running job."""
        job = self.get(job_id)
        if job is None or not job.running:
            return False
        job.cancel()
        return True

    def _run(self, job: Job[T], work: Callable[[Progress], T], describe: Callable[[T], str] | None) -> None:
        state, message, result = "failed", "", None
        try:
            result = work(job)
            message = describe(result) if describe is not None else ""
            state = "done"
        except Cancelled as exc:
            state, message = "cancelled", one_line(exc)
        except OrganizerError as exc:
            message = one_line(exc)
        except Exception as exc:  # a thread must not die silently: the user sees why
            log.exception("%s job %s failed", job.kind.name, job.id)
            message = f"{job.kind.name} failed: {exc.__class__.__name__}: {one_line(exc)}"
        if state != "done":
            _call(job.discard)
        # the result and the message before the state: whoever sees "done" sees both
        job.result, job.message, job.finished = result, message, time.time()
        job.state = state
        self._forget_old(job.kind)

    def _forget_old(self, kind: JobKind) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.kind.key == kind.key and not j.running]
            dropped = finished[:max(0, len(finished) - kind.keep)]
            for old in dropped:
                del self._jobs[old.id]
        for old in dropped:
            if old.state == "done":
                _call(old.discard)


def _call(fn: Callable[[], None] | None) -> None:
    if fn is None:
        return
    try:
        fn()
    except OSError:
        log.warning("could not remove a job's files", exc_info=True)


RUNNER_KEY = "organizer_jobs"


def shared_runner(registry: dict[str, Any]) -> JobRunner:
    """The one runner of a front end, kept in its registry (a Flask app's ``extensions``):
    every page that starts jobs gets the same one."""
    runner = registry.get(RUNNER_KEY)
    if not isinstance(runner, JobRunner):
        runner = registry[RUNNER_KEY] = JobRunner()
    return runner


# --- work folders and their owners ----------------------------------------------------------

@cache
def owner_tag() -> str:
    """``PID-START@HOST``: this process, as written into the names of its work folders.

    The start time (clock ticks since boot, from /proc) tells a live owner from a new
    process that reuses a dead one's pid; the host keeps a shared folder's leftovers of
    another computer's exports from being taken for dead ones here.
    """
    return f"{os.getpid()}-{_start_ticks(os.getpid()) or 0}@{socket.gethostname()}"


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (2nd field) may hold spaces and parentheses: count after the last ')'
    fields_after = stat.rsplit(")", 1)[-1].split()
    return int(fields_after[19]) if len(fields_after) > 19 else None


def owner_alive(tag: str) -> bool | None:
    """Whether the process named by an :func:`owner_tag` still runs; None if ``tag`` is not
    one; True when it cannot be told (another host's, or no /proc and no permission)."""
    m = re.fullmatch(r"(\d+)-(\d+)@(.+)", tag)
    if not m:
        return None
    pid, start, host = int(m.group(1)), int(m.group(2)), m.group(3)
    if host != socket.gethostname():
        return True
    if Path("/proc/self/stat").exists():
        return _start_ticks(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_abandoned(parent: Path, prefix: str, suffix: str = "") -> list[Path]:
    """Remove the folders ``PREFIX<owner tag>.<random>SUFFIX`` in ``parent`` whose owner
    process is gone; the removed ones are returned. Folders of running processes, of
    unknown owners (older versions' names) and anything not a plain folder are left."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or not name.endswith(suffix) or len(name) <= len(prefix) + len(suffix):
            continue
        middle = name[len(prefix):len(name) - len(suffix)]
        if "." not in middle or owner_alive(middle.rsplit(".", 1)[0]) is not False:
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed


def private_folder(prefix: str, parent: Path | None = None) -> Path:
    """A new folder ``PREFIX<owner tag>.<random>`` (in the temporary folder by default)
    for the files of this process's jobs, removed when the process exits normally;
    folders of the same prefix left by processes that were killed are removed first."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    remove_abandoned(parent, prefix)
    # the owner in the name tells the next process whether this one still runs
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}.", dir=parent))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# --- adapters: the scan and the clustering as jobs ------------------------------------------

#: the stages :func:`organizer.clustering.cluster_faces` announces, in order
CLUSTER_STAGES = ("loading faces", "comparing with named people", "clustering", "saving")


def cluster_job(lib: Library, *, eps: float | None = None, min_samples: int | None = None,
                settings: Settings | None = None) -> Callable[[Progress], ClusterReport]:
    """``cluster_faces`` as a job: each stage it announces is one step of four, and a
    cancel is honoured at the stage boundaries up to "saving" (the one write transaction
    comes after it, so a cancelled regrouping changes nothing).

    clustering has only a ``progress(message)`` hook and no cancel; this adapter raises
    :class:`Cancelled` from inside that hook, which works because nothing is written
    before "saving"."""
    def run(progress: Progress) -> ClusterReport:
        from .clustering import cluster_faces

        total = len(CLUSTER_STAGES)
        reached = [0]

        def stage(message: str) -> None:
            # a stage this adapter does not know keeps the count where it was
            reached[0] = next((i for i, s in enumerate(CLUSTER_STAGES) if message.startswith(s)), reached[0])
            progress.step(reached[0], total, message)
            if progress.cancelled:
                raise Cancelled("regrouping cancelled: nothing was changed")

        progress.step(0, total, "starting")
        report = cluster_faces(lib, eps=eps, min_samples=min_samples, settings=settings, progress=stage)
        progress.step(total, total, "done")
        return report
    return run


def scan_job(lib: Library, photo_dir: str | Path, settings: Settings | None = None, *,
             new_root: bool = False) -> Callable[[Progress], ScanReport]:
    """``scanner.scan`` as a job: one step per photo analysed (``what`` is its path).

    A cancel stops the scan after the current photo: the scanner has no cancel hook, so
    :class:`Cancelled` is raised from its progress callback. What earlier batches saved
    stays saved (a scan is resumable by design: the next one carries on), the batch in
    memory is dropped and analysed again next time."""
    def run(progress: Progress) -> ScanReport:
        from .scanner import ScanProgress, scan

        def report(p: ScanProgress) -> None:
            progress.step(p.done, p.total, p.path)
            if progress.cancelled:
                raise Cancelled(f"scan cancelled after {p.done} of {p.total} photos; scan again to carry on")

        return scan(lib, photo_dir, settings, report, new_root=new_root)
    return run
