"""organizer.jobs: the progress/cancel protocol and the job runner, on real work: a real
slideshow export of generated photos (html, no ffmpeg, no dlib) and a real regrouping of
a generated library. Fast: nothing here scans."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from organizer import browse, jobs
from organizer import slideshow as sl
from organizer.db import Library
from organizer.errors import InvalidRequest, OrganizerError
from organizer.models import ClusterRun, Face
from organizer.testing import generate_library

from .job_tools import WAIT_S, Gate

KIND = jobs.JobKind("test", "test job", "a test job is already running", keep=2)
OTHER = jobs.JobKind("other", "other job", "another job is already running")


def _photos(folder: Path, n: int) -> sl.Selection:
    folder.mkdir(parents=True, exist_ok=True)
    slides = []
    for i in range(n):
        f = folder / f"photo{i}.jpg"
        Image.effect_noise((320, 240), 30 + i).convert("RGB").save(f, quality=80)
        slides.append(sl.Slide(i + 1, f.name, f, None, None, 320, 240, [(60.0, 200.0, 180.0, 100.0)], ["Test"]))
    return sl.Selection([sl.PersonRef(1, "Test")], "all", slides)


def _counting(n: int, gate: Gate | None = None) -> Callable[[jobs.Progress], int]:
    def work(progress: jobs.Progress) -> int:
        p = gate.wrap(progress) if gate else progress
        for i in range(1, n + 1):
            if p.cancelled:
                raise jobs.Cancelled(f"stopped at {i - 1}")
            p.step(i, n, f"unit {i}")
        return n * 10
    return work


def test_a_job_runs_reports_progress_and_keeps_its_result() -> None:
    runner, gate = jobs.JobRunner(), Gate()
    job = runner.start(KIND, _counting(3, gate), label="three units", total=3, describe=lambda r: f"made {r}")
    assert job.running and runner.running(KIND) is job and job.label == "three units"
    gate.wait_step()
    assert (job.done, job.total, job.what, job.percent) == (1, 3, "unit 1", 33) and job.running
    gate.release()
    gate.wait_step()
    assert job.done == 2 and job.running
    gate.release()
    gate.wait_step()
    gate.release()
    done = runner.wait(job.id, WAIT_S)
    assert done is job and job.state == "done" and job.result == 30 and job.message == "made 30"
    assert job.finished is not None and runner.running(KIND) is None and runner.latest(KIND) is job


def test_cancel_stops_an_export_and_leaves_no_partial_output(tmp_path: Path) -> None:
    selection = _photos(tmp_path / "photos", 4)
    out = tmp_path / "out"
    out.mkdir()
    runner, gate = jobs.JobRunner(), Gate()
    discarded: list[str] = []
    job = runner.start(KIND, lambda p: sl.export_slideshow(selection, out / "show", "html", progress=gate.wrap(p)),
                       total=4, discard=lambda: discarded.append("gone"))
    gate.wait_step()          # the first photo is written into the export's work folder
    work = [p.name for p in out.iterdir()]
    assert job.done == 1 and len(work) == 1 and work[0].startswith(".show.") and work[0].endswith(".partial")
    assert runner.cancel(job.id)
    gate.release()
    runner.wait(job.id, WAIT_S)
    assert job.state == "cancelled" and job.message == "export cancelled" and job.result is None
    assert job.done == 1                     # stopped before the second photo
    assert list(out.iterdir()) == []         # neither the slideshow nor its work folder
    assert discarded == ["gone"]
    assert not runner.cancel(job.id)         # nothing left to cancel
    # the older ways of asking still work, and an export's cancel is still an ExportError
    assert issubclass(sl.ExportCancelled, sl.ExportError) and issubclass(sl.ExportCancelled, jobs.Cancelled)


def test_a_second_start_of_the_same_kind_is_refused(tmp_path: Path) -> None:
    runner, gate = jobs.JobRunner(), Gate()
    first = runner.start(KIND, _counting(2, gate))
    gate.wait_step()
    with pytest.raises(jobs.JobRunning, match="a test job is already running"):
        runner.start(KIND, _counting(1))
    with pytest.raises(InvalidRequest):       # a request the user can be told about in one line
        runner.check_free(KIND)
    other = runner.start(OTHER, _counting(1))  # another kind runs alongside
    assert runner.wait(other.id, WAIT_S).state == "done"
    assert [j.id for j in runner.jobs(KIND)] == [first.id]
    gate.release(2)
    assert runner.wait(first.id, WAIT_S).state == "done"
    again = runner.start(KIND, _counting(1))  # free again once it has finished
    assert runner.wait(again.id, WAIT_S).state == "done"


class TwoLines(OrganizerError):
    pass


def _raises(exc: Exception) -> Callable[[jobs.Progress], None]:
    def work(progress: jobs.Progress) -> None:
        progress.step(1, 2)
        raise exc
    return work


def test_errors_are_kept_as_one_line_and_their_files_discarded() -> None:
    runner = jobs.JobRunner()
    discarded: list[str] = []
    known = runner.start(KIND, _raises(TwoLines("the disk is full\n(while writing photo 3)")),
                         discard=lambda: discarded.append("known"))
    assert runner.wait(known.id, WAIT_S).state == "failed"
    assert known.message == "the disk is full (while writing photo 3)" and known.result is None
    bug = runner.start(KIND, _raises(KeyError("width")), discard=lambda: discarded.append("bug"))
    assert runner.wait(bug.id, WAIT_S).state == "failed"
    assert bug.message == "test job failed: KeyError: 'width'"
    assert discarded == ["known", "bug"] and "\n" not in known.message + bug.message


def test_old_finished_jobs_are_dropped_with_their_files() -> None:
    runner = jobs.JobRunner()
    discarded: list[int] = []
    ids = []
    for n in range(4):
        job = runner.start(KIND, _counting(1), discard=lambda n=n: discarded.append(n))  # type: ignore[misc]
        ids.append(runner.wait(job.id, WAIT_S).id)
    assert [j.id for j in runner.jobs(KIND)] == ids[-KIND.keep:]
    assert runner.get(ids[0]) is None and discarded == [0, 1]


def test_progress_adapters() -> None:
    assert not jobs.NULL_PROGRESS.cancelled and isinstance(jobs.NULL_PROGRESS, jobs.Progress)
    jobs.NULL_PROGRESS.step(1, 2, "nothing happens")
    seen: list[tuple[int, int]] = []
    event = threading.Event()
    p = jobs.as_progress(lambda d, t: seen.append((d, t)), event)
    p.step(1, 5, "a")
    assert seen == [(1, 5)] and not p.cancelled
    event.set()
    assert p.cancelled
    listed = jobs.ListProgress(cancel_after=2)
    assert jobs.as_progress(listed) is listed
    token = jobs.CancelToken()
    both = jobs.as_progress(listed, token)
    both.step(1, 3, "x")
    assert not both.cancelled
    token.cancel()
    assert both.cancelled and not listed.cancelled and listed.steps == [(1, 3, "x")]
    listed.step(2, 3, "y")
    assert listed.cancelled


def test_the_export_reports_through_the_protocol(tmp_path: Path) -> None:
    selection = _photos(tmp_path / "photos", 3)
    listed = jobs.ListProgress()
    report = sl.export_slideshow(selection, tmp_path / "show", "folder", progress=listed)
    assert report.photos == 3 and listed.steps == [(i, 3, f"photo{i - 1}.jpg") for i in (1, 2, 3)]
    stopped = jobs.ListProgress(cancel_after=1)
    with pytest.raises(sl.ExportCancelled, match="cancelled"):
        sl.export_slideshow(selection, tmp_path / "again", "folder", progress=stopped)
    assert stopped.steps == [(1, 3, "photo0.jpg")] and sorted(p.name for p in tmp_path.iterdir()) == ["photos", "show"]


def test_a_download_export_as_a_job(tmp_path: Path) -> None:
    selection = _photos(tmp_path / "photos", 2)
    place = tmp_path / "job"
    place.mkdir()
    runner = jobs.JobRunner()
    job = runner.start(KIND, lambda p: sl.export_download(selection, place, "html", size="320x180", progress=p),
                       total=2, describe=sl.Download.summary)
    assert runner.wait(job.id, WAIT_S).state == "done", job.message
    download = job.result
    assert download is not None and download.file == place / "Test.zip" and download.name == "Test-html.zip"
    assert sorted(p.name for p in place.iterdir()) == ["Test.zip"]   # the folder went into the zip
    assert job.message.startswith("wrote the slideshow (slideshow folder, 2 photos") and str(place) not in job.message


# --- the clustering through its adapter ------------------------------------------------------

@pytest.fixture()
def generated(tmp_path: Path):  # type: ignore[no-untyped-def]
    generate_library(tmp_path / "lib.db", faces=300, named_people=3)
    lib = Library.open(f"sqlite:///{tmp_path / 'lib.db'}")
    yield lib
    lib.close()


def test_regrouping_as_a_job_steps_through_the_stages(generated: Library) -> None:
    listed = jobs.ListProgress()
    report = jobs.cluster_job(generated)(listed)
    assert report.clusters > 0 and browse.count_clusters(generated) > 0
    assert [d for d, _, _ in listed.steps] == [0, 0, 1, 2, 3, 4] and {t for _, t, _ in listed.steps} == {4}
    assert [w for _, _, w in listed.steps][1:3] == ["loading faces", "comparing with named people"]
    assert listed.steps[3][2].startswith("clustering ") and listed.steps[-2][2] == "saving"


def _grouping(lib: Library) -> tuple[int, list[tuple]]:
    with lib.session() as s:
        runs = s.scalar(select(func.count()).select_from(ClusterRun)) or 0
        faces = s.execute(select(Face.id, Face.cluster_id, Face.person_id, Face.assignment).order_by(Face.id)).all()
    return runs, [tuple(f) for f in faces]


def test_a_cancelled_regrouping_changes_nothing(generated: Library) -> None:
    before = _grouping(generated)
    stop_at_saving = jobs.ListProgress(cancel_after=5)   # starting, loading, comparing, clustering, saving
    with pytest.raises(jobs.Cancelled, match="nothing was changed"):
        jobs.cluster_job(generated)(stop_at_saving)
    assert stop_at_saving.steps[-1][2] == "saving"
    assert _grouping(generated) == before
    jobs.cluster_job(generated)(jobs.NULL_PROGRESS)      # not cancelled: a new run, faces regrouped
    after = _grouping(generated)
    assert after[0] == before[0] + 1 and after[1] != before[1]
