"""Slideshows on a real scanned library: selection (ALL/ANY, dates, face size, trust),
ordering, face-keeping crops, and every format produced and checked — the html in a real
headless Chromium, the mp4 probed and its frames compared with the expected crop, the
folder's names sorted — plus the error cases that must leave nothing behind."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import select

from organizer import slideshow as sl
from organizer.cli import main as cli_main
from organizer.db import Library
from organizer.errors import InvalidRequest, PersonNotFound
from organizer.models import Assignment, Face, Person, Photo
from organizer.testing import label_by_folder

from .conftest import chromium, copy_db, db_url, photos_dir, scan_into

HOPPER = "edge-cases/more/pillow_hopper"


# --- the library: people-small + two-person photos + an EXIF-rotated JPEG and a HEIC --------

@pytest.fixture(scope="session")
def show_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slideshow") / "photos"
    shutil.copytree(photos_dir("people-small/train"), root / "people")
    for name in ("obama_and_biden.jpg", "kit_with_rose.jpg"):
        shutil.copy2(photos_dir("people-small/test") / name, root / name)   # not in a person folder
    shutil.copy2(photos_dir("edge-cases") / "obama_partial_face.jpg", root / "people" / "obama")
    (root / "people" / "hopper").mkdir()
    shutil.copy2(photos_dir(HOPPER) / "hopper_orientation_6.jpg", root / "people" / "hopper")
    shutil.copy2(photos_dir(HOPPER) / "avif" / "hopper.heif", root / "people" / "hopper")
    db = tmp_path_factory.mktemp("slideshow_db") / "library.db"
    lib = scan_into(db, root)
    label_by_folder(lib)
    _label_group_photos(lib)
    lib.close()
    return db


def _label_group_photos(lib: Library) -> None:
    """Name the faces of the two-person photos after the nearest labelled face, if close
    (as a user confirming each face would)."""
    with lib.session() as s:
        known = [(f.person_id, f.vector) for f in s.scalars(select(Face).where(Face.person_id.is_not(None)))]
        for photo in s.scalars(select(Photo).where(~Photo.path.contains("/"))):
            for face in photo.faces:
                dist, pid = min((float(np.linalg.norm(v - face.vector)), p) for p, v in known)
                if dist < 0.55:   # a stranger in the background stays unnamed
                    face.person_id, face.assignment, face.confidence = pid, Assignment.confirmed, 1.0


@pytest.fixture()
def lib(show_db: Path, tmp_path_factory: pytest.TempPathFactory):
    # a folder of its own keeps tmp_path free for the exports under test
    library = Library.open(db_url(copy_db(show_db, tmp_path_factory.mktemp("db") / "library.db")))
    yield library
    library.close()


def _paths(selection: sl.Selection) -> list[str]:
    return [s.path for s in selection.slides]


def _set_dates(lib: Library, dates: dict[str, datetime | None]) -> None:
    with lib.session() as s:
        for photo in s.scalars(select(Photo)):
            if photo.path in dates:
                photo.taken_at = dates[photo.path]
                photo.taken_at_source = "exif" if dates[photo.path] else None


def _person_photos(lib: Library, name: str) -> set[str]:
    with lib.session() as s:
        rows = s.execute(select(Photo.path).join(Face).join(Person, Person.id == Face.person_id)
                         .where(Person.name == name, Face.assignment == Assignment.confirmed))
        return {r[0] for r in rows}


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- selection --------------------------------------------------------------------------------

def test_all_and_any(lib: Library) -> None:
    obama, biden = _person_photos(lib, "obama"), _person_photos(lib, "biden")
    assert "obama_and_biden.jpg" in obama & biden and len(obama) >= 3 and len(biden) >= 2
    together = sl.select_photos(lib, ["obama", "biden"])
    assert _paths(together) == ["obama_and_biden.jpg"]
    assert together.slides[0].names == ["obama", "biden"]
    assert len(together.slides[0].focus) == 2           # both faces must stay in frame
    either = sl.select_photos(lib, ["obama", "biden"], match="any")
    assert set(_paths(either)) == obama | biden
    assert len(_paths(either)) == len(set(_paths(either)))  # the shared photo only once
    alone = sl.select_photos(lib, ["Obama"])              # case-insensitive name
    assert set(_paths(alone)) == obama
    group = next(s for s in alone.slides if s.path == "obama_and_biden.jpg")
    assert group.names == ["obama", "biden"] and len(group.focus) == 1


def test_date_range_inclusive_years_and_undated(lib: Library) -> None:
    obama = sorted(_person_photos(lib, "obama"))
    years = [1989, 1990, 2000, 2001]
    dates = {p: datetime(y, 12, 31, 23, 0) if y in (1989, 2000) else datetime(y, 1, 1) for p, y in zip(obama, years)}
    dates.update({p: None for p in obama[len(years):]})
    _set_dates(lib, dates)
    sel = sl.select_photos(lib, ["obama"], date_from="1990", date_to="2000")
    assert _paths(sel) == [obama[1], obama[2]]           # 1 Jan 1990 and 31 Dec 2000 23:00 both in
    assert sel.undated_excluded == len(obama) - len(years)
    assert _paths(sl.select_photos(lib, ["obama"], date_from="2000-12-31")) == [obama[2], obama[3]]
    assert _paths(sl.select_photos(lib, ["obama"], date_to="1989-12")) == [obama[0]]
    with pytest.raises(sl.EmptySelection):
        sl.select_photos(lib, ["obama"], date_from="1991", date_to="1999")
    with pytest.raises(InvalidRequest, match="not a date"):
        sl.select_photos(lib, ["obama"], date_from="last summer")
    with pytest.raises(InvalidRequest, match="after"):
        sl.select_photos(lib, ["obama"], date_from="2001", date_to="2000")


def test_min_face_size(lib: Library) -> None:
    with lib.session() as s:
        rows = s.execute(select(Photo.path, Face.bottom - Face.top, Face.right - Face.left).join(Face)
                         .join(Person, Person.id == Face.person_id).where(Person.name == "obama")).all()
    sizes = {path: min(h, w) for path, h, w in rows}
    ordered = sorted(set(sizes.values()))
    assert len(ordered) >= 2
    threshold = ordered[len(ordered) // 2]
    expected = {p for p, size in sizes.items() if size >= threshold}
    assert 0 < len(expected) < len(sizes)
    assert set(_paths(sl.select_photos(lib, ["obama"], min_face=threshold))) == expected


def test_confirmed_only_by_default_auto_when_asked(lib: Library) -> None:
    biden_id = sl.resolve_people(lib, ["biden"])[0].id
    alex, rose1, rose2 = "people/alex_lacamoire/img1.jpg", "people/rose_leslie/img1.jpg", "people/rose_leslie/img2.jpg"
    machine = {alex: (Assignment.auto, 0.95), rose1: (Assignment.auto, 0.5), rose2: (Assignment.suggested, 0.99)}
    with lib.session() as s:
        for path, (assignment, confidence) in machine.items():
            face = s.scalar(select(Face).join(Photo).where(Photo.path == path))
            face.person_id, face.assignment, face.confidence = biden_id, assignment, confidence
    confirmed = set(_paths(sl.select_photos(lib, ["biden"])))
    assert confirmed == _person_photos(lib, "biden") and not confirmed & set(machine)
    with_auto = set(_paths(sl.select_photos(lib, ["biden"], include_auto=True)))
    assert with_auto == confirmed | {alex}        # confident auto only; never a mere suggestion


def test_order_by_capture_time_undated_last(lib: Library) -> None:
    photos = sorted(_person_photos(lib, "obama") | _person_photos(lib, "biden"))
    assert len(photos) >= 5
    stamps = [datetime(2010, 5, 1), None, datetime(1975, 3, 2), datetime(2010, 5, 1, 0, 0, 1), None]
    dates = dict(zip(photos, stamps))
    dates.update({p: datetime(1999, 1, 1) for p in photos[len(stamps):]})
    _set_dates(lib, dates)
    sel = sl.select_photos(lib, ["obama", "biden"], match="any")
    got = [s.taken_at for s in sel.slides]
    dated = [d for d in got if d is not None]
    assert dated == sorted(dated) and got[-2:] == [None, None]
    assert [s.path for s in sel.undated] == [photos[1], photos[4]]
    assert sel.slides[0].path == photos[2]


def test_unknown_person_and_empty_selection_write_nothing(lib: Library, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(PersonNotFound, match="Grandma"):
        sl.make_slideshow(lib, ["obama", "Grandma"], out_dir / "show.mp4", "mp4")
    with pytest.raises(sl.EmptySelection, match="alex_lacamoire and rose_leslie together"):
        sl.make_slideshow(lib, ["alex_lacamoire", "rose_leslie"], out_dir / "show", "html")
    assert _listing(out_dir) == []


def test_unwritable_output_writes_nothing(lib: Library, tmp_path: Path) -> None:
    sel = sl.select_photos(lib, ["obama"])
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(sl.ExportError, match="does not exist"):
        sl.export_slideshow(sel, blocker / "show", "folder")
    with pytest.raises(sl.ExportError, match="does not exist"):
        sl.export_slideshow(sel, tmp_path / "missing" / "show.mp4", "mp4")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(sl.ExportError, match="already exists"):
        sl.export_slideshow(sel, existing, "html")
    assert _listing(tmp_path) == ["a-file", "existing"] and _listing(existing) == ["keep.txt"]


def test_failure_midway_leaves_nothing(lib: Library, tmp_path: Path) -> None:
    """An export that fails part-way (here: cancelled after the second photo) removes its
    temporary folder and never creates the output."""
    import threading

    sel = sl.select_photos(lib, ["obama", "biden"], match="any")
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            cancel.set()

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(sl.ExportError, match="cancelled"):
        sl.export_slideshow(sel, out / "show", "html", progress=progress, cancel=cancel)
    assert seen[:2] == [(1, len(sel)), (2, len(sel))]
    assert _listing(out) == []


# --- geometry ---------------------------------------------------------------------------------

@st.composite
def photo_and_faces(draw):  # type: ignore[no-untyped-def]
    w = draw(st.integers(40, 5000))
    h = draw(st.integers(40, 5000))
    aspect = draw(st.sampled_from([16 / 9, 4 / 3, 1.0, 3 / 4, 9 / 16, 21 / 9]))
    boxes = []
    for _ in range(draw(st.integers(1, 3))):
        side = draw(st.integers(8, max(8, min(w, h) * 3 // 2)))
        left = draw(st.integers(-side // 3, w - side // 2))   # partly outside the photo is allowed
        top = draw(st.integers(-side // 3, h - side // 2))
        boxes.append((top, left + side, top + side, left))
    return w, h, aspect, boxes


@settings(max_examples=400, deadline=None)
@given(photo_and_faces())
def test_crop_and_zoom_keep_the_main_face(case) -> None:  # type: ignore[no-untyped-def]
    w, h, aspect, boxes = case
    rect = sl.focus_crop(w, h, aspect, boxes)
    x0, y0, x1, y1 = rect
    assert abs((x1 - x0) / (y1 - y0) - aspect) < 1e-6
    main = sl._clip_box(boxes[0], w, h)
    assert sl.box_inside(main, rect)
    grown = x0 < -1e-6 or y0 < -1e-6 or x1 > w + 1e-6 or y1 > h + 1e-6
    largest_w = min(w, h * aspect)
    if grown:   # only when the face does not fit in the largest crop inside the photo
        assert main[1] - main[3] > largest_w + 1e-6 or main[2] - main[0] > largest_w / aspect + 1e-6
    else:
        assert abs((x1 - x0) - largest_w) < 1e-6            # the largest crop, not a needless zoom
    union = sl._union([sl._clip_box(b, w, h) for b in boxes])
    if union[1] - union[3] <= largest_w and union[2] - union[0] <= largest_w / aspect:
        assert sl.box_inside(union, rect)                  # everyone fits: everyone is kept
    zoom, px, py = sl.ken_burns(rect, [main])
    assert 1.0 <= zoom <= sl.MAX_ZOOM + 1e-9
    for t in (0.0, 0.25, 0.5, 0.8, 1.0):
        frame = sl.zoom_rect(rect, zoom, px, py, t)
        assert sl.box_inside(main, frame, tol=1e-4)
        assert all(a >= b - 1e-4 for a, b in zip(frame[:2], rect[:2]))        # inside the start
        assert all(a <= b + 1e-4 for a, b in zip(frame[2:], rect[2:]))
        assert abs((frame[2] - frame[0]) / (frame[3] - frame[1]) - aspect) < 1e-6


def test_crop_is_centred_on_the_face_when_it_can_be() -> None:
    # a landscape photo, face on the right, portrait output: the crop slides right
    rect = sl.focus_crop(4000, 3000, 9 / 16, [(1000, 2900, 1400, 2500)])
    assert rect[2] - rect[0] == pytest.approx(3000 * 9 / 16) and rect[1:4:2] == (0, 3000)
    assert (rect[0] + rect[2]) / 2 == pytest.approx(2700)
    # face at the very edge: clamped to the photo, face still inside
    rect = sl.focus_crop(4000, 3000, 9 / 16, [(1000, 4000, 1400, 3700)])
    assert rect[2] == pytest.approx(4000) and sl.box_inside((1000, 4000, 1400, 3700), rect)


# --- formats ----------------------------------------------------------------------------------

def test_folder_names_sort_by_date_and_copy_originals(lib: Library, tmp_path: Path) -> None:
    photos = sorted(_person_photos(lib, "obama") | _person_photos(lib, "biden"))
    stamps = [datetime(2015, 1, 1), None, datetime(1990, 7, 4, 12), datetime(1990, 7, 4, 12), datetime(2003, 2, 1)]
    _set_dates(lib, dict(zip(photos, stamps)))
    sel = sl.select_photos(lib, ["obama", "biden"], match="any")
    out = tmp_path / "folder"
    report = sl.export_slideshow(sel, out, "folder")
    names = os.listdir(out)
    assert sorted(names) == [sl.folder_name(s, i, 4) for i, s in enumerate(sel.slides, 1)]
    assert len(names) == report.photos == len(sel)
    root = lib.root
    for name, slide in zip(sorted(names), sel.slides):
        assert (out / name).read_bytes() == (root / slide.path).read_bytes()
        assert name.endswith(Path(slide.path).name)
    assert sorted(names)[0].startswith("1990-07-04_120000_")
    assert sorted(names)[-1].startswith("undated_") and report.undated == [photos[1]]


def test_folder_links(lib: Library, tmp_path: Path) -> None:
    sel = sl.select_photos(lib, ["biden"])
    sl.export_slideshow(sel, tmp_path / "links", "folder", link=True)
    for f, slide in zip(sorted((tmp_path / "links").iterdir()), sel.slides):
        assert os.path.samefile(f, slide.file)


def test_exif_rotated_and_heic_sources(lib: Library, tmp_path: Path) -> None:
    """hopper_orientation_6.jpg is stored sideways: its face is only found upright, so a
    face found in the exported image proves the export turned it; the HEIC decodes."""
    from organizer import faces

    sel = sl.select_photos(lib, ["hopper"])
    assert {Path(s.path).name for s in sel.slides} == {"hopper_orientation_6.jpg", "hopper.heif"}
    report = sl.export_slideshow(sel, tmp_path / "show", "html")
    assert report.photos == 2 and not report.skipped
    for i, slide in enumerate(sel.slides, 1):
        exported = np.asarray(Image.open(tmp_path / "show" / "images" / f"{i:04d}.jpg").convert("RGB"))
        assert faces.detect(exported, upsample=1), f"no upright face in the export of {slide.path}"
    sideways = np.asarray(Image.open(sel.slides[0].file if sel.slides[0].path.endswith(".jpg") else sel.slides[1].file).convert("RGB"))
    assert not faces.detect(sideways, upsample=1)   # the check above can fail
    out = tmp_path / "folder"
    sl.export_slideshow(sel, out, "folder")
    assert sorted(p.suffix for p in out.iterdir()) == [".heif", ".jpg"]


def _probe(path: Path) -> tuple[int, float, tuple[int, int]]:
    import imageio_ffmpeg

    frames, secs = imageio_ffmpeg.count_frames_and_secs(str(path))
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr
    m = re.search(r"Video: h264.*?, (\d+)x(\d+)", info)
    assert m, info
    return frames, secs, (int(m.group(1)), int(m.group(2)))


def test_mp4_duration_frames_resolution_and_zoom_on_face(lib: Library, tmp_path: Path) -> None:
    import imageio_ffmpeg

    sel = sl.select_photos(lib, ["obama", "hopper"], match="any")
    out = tmp_path / "obama.mp4"
    done: list[int] = []
    report = sl.export_slideshow(sel, out, "mp4", size="320x180", seconds=1, progress=lambda d, t: done.append(d))
    n = len(sel)
    assert done == list(range(1, n + 1)) and report.photos == n and not report.skipped
    frames, secs, dims = _probe(out)
    assert dims == (320, 180)
    assert frames == n * sl.FPS
    assert abs(secs - n * 1.0) < 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["obama.mp4"]   # no work files left behind
    # each photo's first and last frames are the expected face-keeping crops: compare the
    # video with the same rectangles rendered by Pillow (allowing ffmpeg's whole-pixel
    # rounding of the crop offsets: best match within +-2 px)
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (320, 180)
    video = [np.frombuffer(f, np.uint8).reshape(180, 320, 3).astype(int) for f in reader]
    assert len(video) == n * sl.FPS
    zoomed = 0
    for i, slide in enumerate(sel.slides):
        start = sl.focus_crop(slide.width, slide.height, 320 / 180, slide.focus)
        zoom, px, py = sl.ken_burns(start, slide.focus)
        end = sl.zoom_rect(start, zoom, px, py, 1)
        assert sl.box_inside(sl._clip_box(slide.focus[0], slide.width, slide.height), end)
        first, last = video[i * sl.FPS], video[(i + 1) * sl.FPS - 1]
        err_first, err_last = _match(first, slide, start), _match(last, slide, end)
        assert err_first < 8 and err_last < 8, (slide.path, err_first, err_last)
        if zoom > 1.05:   # the zoom really happened: the last frame is not the first crop
            zoomed += 1
            assert _match(last, slide, start) > err_last + 3, slide.path
    assert zoomed >= 2


def _match(frame: np.ndarray, slide: sl.Slide, rect: sl.Rect, margin: int = 2) -> float:
    """Mean absolute difference between ``frame`` and ``rect`` of the photo rendered at the
    frame's size, at the best offset within +-``margin`` px."""
    h, w = frame.shape[:2]
    k = (rect[2] - rect[0]) / w
    wide = (rect[0] - margin * k, rect[1] - margin * k, rect[2] + margin * k, rect[3] + margin * k)
    want = np.asarray(sl.render_region(slide, wide, w + 2 * margin, h + 2 * margin), dtype=int)
    return min(float(np.abs(frame - want[dy:dy + h, dx:dx + w]).mean())
               for dx in range(2 * margin + 1) for dy in range(2 * margin + 1))


def test_html_plays_in_chromium_with_escaped_names(lib: Library, tmp_path: Path) -> None:
    nasty = '<b>Obama</b> & "Co" <script>alert(1)</script>'
    with lib.session() as s:
        s.scalar(select(Person).where(Person.name == "obama")).name = nasty
    _set_dates(lib, {"obama_and_biden.jpg": datetime(1961, 8, 4)})
    sel = sl.select_photos(lib, [nasty, "biden"], match="any")
    assert sel.slides[0].path == "obama_and_biden.jpg"
    out = tmp_path / "show"
    report = sl.export_slideshow(sel, out, "html", size="640x360", seconds=0.5)
    page = (out / "index.html").read_text()
    assert "<b>Obama" not in page and "<script>alert" not in page
    assert "&lt;b&gt;Obama&lt;/b&gt; &amp; &quot;Co&quot;" in page
    assert len(list((out / "images").iterdir())) == report.photos == len(sel)
    for img in (out / "images").iterdir():
        with Image.open(img) as im:
            assert im.width <= 640 and im.height <= 360
    driver = chromium("--allow-file-access-from-files")
    try:
        driver.set_window_size(800, 500)
        driver.get((out / "index.html").as_uri())
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        state = driver.execute_script(
            "var f = document.querySelector('figure.slide.active'); var i = f.querySelector('img');"
            "return [f.dataset.index, i.getAttribute('src'), i.complete && i.naturalWidth, "
            "f.querySelector('figcaption').textContent, getComputedStyle(f).visibility];")
        index, src, width, caption, visibility = state
        assert (index, src, visibility) == ("0", "images/0001.jpg", "visible")
        assert width and width > 0                       # the first image really loaded
        assert caption == f"4 August 1961 · {nasty}, biden"  # literal text, not markup
        assert not driver.execute_script("return window.__xss === 1")
        # next / previous buttons
        driver.find_element(By.ID, "play").click()       # pause autoplay first
        driver.find_element(By.ID, "next").click()
        assert driver.find_element(By.ID, "counter").text == f"2 / {len(sel)}"
        driver.find_element(By.ID, "prev").click()
        driver.find_element(By.ID, "prev").click()
        assert driver.find_element(By.ID, "counter").text == f"{len(sel)} / {len(sel)}"
        # autoplay advances on its own
        driver.find_element(By.ID, "play").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "counter").text == f"1 / {len(sel)}")
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "counter").text == f"2 / {len(sel)}")
        assert driver.execute_script(
            "var i = document.querySelector('figure.slide.active img'); return i.complete && i.naturalWidth") > 0
    finally:
        driver.quit()


# --- command line -------------------------------------------------------------------------------

def test_cli_exports_and_reports(lib: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(lib.engine.url)
    _set_dates(lib, {"people/biden/biden.jpg": None})
    out = tmp_path / "biden"
    rc = cli_main(["slideshow", "biden", "--with", "obama", "--any", "--format", "folder", "-o", str(out), "--db", url])
    text = capsys.readouterr()
    assert rc == 0, text.err
    expected = _person_photos(lib, "biden") | _person_photos(lib, "obama")
    assert len(os.listdir(out)) == len(expected)
    assert "without a capture date" in text.out and "people/biden/biden.jpg" in text.out
    assert sorted(os.listdir(out))[-1].startswith("undated_") and sorted(os.listdir(out))[-1].endswith("biden.jpg")
    rc = cli_main(["slideshow", "Nobody", "--format", "mp4", "-o", str(tmp_path / "x.mp4"), "--db", url])
    err = capsys.readouterr().err
    assert rc == 1 and "Nobody" in err and len(err.strip().splitlines()) == 1
    rc = cli_main(["slideshow", "biden", "--format", "gif", "-o", str(tmp_path / "x"), "--db", url])
    assert rc == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["biden"]


# --- dashboard page -----------------------------------------------------------------------------

def _wait_job(jobs, job_id: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job.state != "running":
            return job
        time.sleep(0.05)
    raise AssertionError("export did not finish")


def test_dashboard_export_and_download_route(lib: Library) -> None:
    import io
    import zipfile

    from dashboard.app import create_app
    from dashboard.pages import PAGES
    from dashboard.pages import slideshow as page

    assert "slideshow" in PAGES and page.PATH == "/slideshow"
    app = create_app(lib)
    jobs = app.server.extensions[page.EXTENSION_KEY]
    client = app.server.test_client()
    with pytest.raises(PersonNotFound):
        jobs.start({"people": ["Nobody"], "fmt": "html"})
    job = jobs.start({"people": ["obama", "biden"], "match": "any", "fmt": "html", "size": "640x360", "seconds": 2})
    job = _wait_job(jobs, job.id)
    assert job.state == "done", job.message
    assert job.done == job.total == len(sl.select_photos(lib, ["obama", "biden"], match="any"))
    resp = client.get(f"/slideshow/download/{job.id}")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(resp.data)).namelist()
    assert any(n.endswith("/index.html") for n in names) and sum(n.endswith(".jpg") for n in names) == job.total
    # only a finished export of this app can be downloaded: never a path from the request
    for bad in ("0" * 32, "..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", job.id + "x"):
        assert client.get(f"/slideshow/download/{bad}").status_code == 404, bad
    video = _wait_job(jobs, jobs.start({"people": ["biden"], "fmt": "mp4", "size": "1280x720", "seconds": 0.4}).id)
    assert video.state == "done", video.message
    resp = client.get(f"/slideshow/download/{video.id}")
    assert resp.status_code == 200 and resp.mimetype == "video/mp4" and resp.data[4:8] == b"ftyp"


def test_dashboard_page_in_chromium(lib: Library) -> None:
    import threading
    import urllib.request

    from werkzeug.serving import make_server

    from dashboard.app import create_app

    driver = chromium("--allow-file-access-from-files")
    app = create_app(lib)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        driver.set_window_size(1280, 900)
        driver.get(f"{base}/slideshow?person=obama")
        expected = sl.select_photos(lib, ["obama"])
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#slideshow-thumbs img")) == min(8, len(expected)))
        captions = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#slideshow-thumbs figcaption")]
        assert captions == [s.caption() for s in expected.slides[:8]]
        assert driver.find_element(By.ID, "slideshow-summary").text.startswith(f"{len(expected)} photos")
        driver.find_element(By.ID, "slideshow-export").click()
        link = wait.until(lambda d: d.find_elements(By.ID, "slideshow-download"))[0]
        href = link.get_attribute("href")
        with urllib.request.urlopen(href) as resp:
            assert resp.status == 200 and resp.read(2) == b"PK"
    finally:
        driver.quit()
        server.shutdown()
