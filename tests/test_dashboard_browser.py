"""The dashboard end to end in a real headless Chromium: a scanned library of real LFW
photos, clustered; the user names a group, removes a wrong face, answers a suggestion with
the keyboard and undoes it, and the database is checked after each step. Saves the
screenshots used by the README (docs/screenshots/).

Needs Debian's chromium and chromium-driver (or CHROME_BIN / CHROMEDRIVER pointing at
them); skipped with the reason when they are missing.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from organizer import browse, clustering, labelling
from organizer.db import Library
from organizer.models import Assignment, Face, FaceRejection, Person

from .conftest import REPO, copy_db, db_url

pytestmark = [pytest.mark.browser,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*")]
SHOTS = REPO / "docs" / "screenshots"
WAIT_S = 40


def _find(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def live(lfw_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Library]]:
    """The dashboard on a private copy of the scanned LFW subset, clustered, with every
    group but the largest already named (so there are suggestions), on a random port."""
    from werkzeug.serving import make_server

    from dashboard.app import create_app

    lib = Library.open(db_url(copy_db(lfw_db, tmp_path_factory.mktemp("browser") / "library.db")))
    clustering.cluster_faces(lib)
    for c in browse.list_clusters(lib, limit=100)[1:]:
        folders = Counter(f.photo_path.split("/")[0] for f in browse.faces_in_cluster(lib, c.id))
        labelling.name_cluster(lib, c.id, folders.most_common(1)[0][0].replace("_", " "))
    server = make_server("127.0.0.1", 0, create_app(lib).server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", lib
    server.shutdown()
    lib.close()


@pytest.fixture(scope="module")
def driver():  # type: ignore[no-untyped-def]
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chrome = _find("CHROME_BIN", "chromium", "chromium-browser", "/usr/bin/chromium", "google-chrome")
    chromedriver = _find("CHROMEDRIVER", "chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
    if not chrome or not chromedriver:
        pytest.skip("needs chromium and chromedriver (apt install chromium chromium-driver) for browser tests")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--window-size=1280,860", "--hide-scrollbars", "--lang=en-US"]:
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(chromedriver), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def wait(d, condition, message: str = ""):  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    # Dash replaces DOM nodes when a callback re-renders: an element found in one poll can
    # be gone by the next line, so such a poll counts as "not yet" rather than a failure
    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(d, WAIT_S, poll_frequency=0.1, ignored_exceptions=ignored).until(condition, message)
    except TimeoutException:
        pytest.fail(f"{message} (page {d.current_url}; messages shown: {toast_text(d)!r})")


def wait_db(d, check, message: str):  # type: ignore[no-untyped-def]
    """Wait until the database shows the effect (the server works asynchronously)."""
    return wait(d, lambda _d: check(), message)


def css(d, selector: str):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, selector)


def all_css(d, selector: str):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, selector)


def present(selector: str):  # type: ignore[no-untyped-def]
    return lambda d: all_css(d, selector)[0] if all_css(d, selector) else False


def toast_text(d) -> str:  # type: ignore[no-untyped-def]
    # textContent, not .text: a success toast fades out after a few seconds
    return " ".join(t.get_attribute("textContent") for t in all_css(d, ".toast"))


def open_page(d, url: str, ready: str):  # type: ignore[no-untyped-def]
    d.get(url)
    return wait(d, present(ready), f"{url}: {ready} never appeared")


def shot(d, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    # let thumbnails finish loading so the screenshot shows faces, not grey squares
    wait(d, lambda d: d.execute_script(
        "return Array.from(document.images).every(i => i.complete)"), f"images of {name} never loaded")
    d.save_screenshot(str(SHOTS / f"{name}.png"))


def confirmed(lib: Library, person_id: int) -> set[int]:
    with lib.session() as s:
        return set(s.scalars(select(Face.id).where(Face.person_id == person_id, Face.assignment == Assignment.confirmed)))


def person_id(lib: Library, name: str) -> int | None:
    with lib.session() as s:
        return s.scalar(select(Person.id).where(Person.name == name))


def test_label_a_library_in_the_browser(live, driver) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    base, lib = live
    d = driver
    group = browse.list_clusters(lib, limit=1)[0]
    card = f"#review-group-{group.id}"

    # 1. Review groups: the largest unnamed group is on the first page
    open_page(d, base + "/review", card)
    assert len(all_css(d, f"{card} .face-tile")) == len(group.face_ids)
    shot(d, "review")

    # an empty name is refused with a message and changes nothing
    people_before = len(browse.list_people(lib, include_hidden=True))
    css(d, f"{card} .name-form button").click()
    wait(d, lambda d: "cannot be empty" in toast_text(d), "no error message for an empty name")
    assert len(browse.list_people(lib, include_hidden=True)) == people_before
    assert browse.get_cluster(lib, group.id).size == group.size

    # 2. name the group (type + Enter)
    box = css(d, f"{card} .name-form input")
    box.send_keys("Ada Lovelace")
    box.send_keys(Keys.ENTER)
    wait_db(d, lambda: person_id(lib, "Ada Lovelace") is not None
            and confirmed(lib, person_id(lib, "Ada Lovelace")) >= set(group.face_ids), "the group was not named")
    ada = person_id(lib, "Ada Lovelace")
    wait(d, lambda d: not all_css(d, card), "the named group is still listed")
    assert "Ada Lovelace" in toast_text(d)

    # 3. the person page, through the toast's link; select with click and shift-click
    css(d, ".toast .toast-link").click()
    wait(d, lambda d: css(d, "#person-title").text == "Ada Lovelace", "person page did not open")
    tiles = all_css(d, ".face-grid .face-tile")
    assert len(tiles) == len(confirmed(lib, ada)) >= 3
    tiles[0].click()
    ActionChains(d).key_down(Keys.SHIFT).click(tiles[2]).key_up(Keys.SHIFT).perform()
    wait(d, lambda d: css(d, "#person-selcount").text == "3 faces selected", "shift-click did not select a range")
    assert ["selected" in t.get_attribute("class") for t in tiles[:4]] == [True, True, True, False][:len(tiles[:4])]
    css(d, "body").send_keys(Keys.ESCAPE)
    wait(d, lambda d: css(d, "#person-selcount").text == "Nothing selected", "Esc did not clear the selection")

    # remove a wrong face
    wrong = int(tiles[-1].get_attribute("data-face"))
    tiles[-1].click()
    wait(d, lambda d: css(d, "#person-selcount").text == "1 face selected", "click did not select")
    shot(d, "person")
    css(d, "#person-sel-remove").click()

    def removed() -> bool:
        with lib.session() as s:
            face = s.get(Face, wrong)
            return face.person_id is None and s.get(FaceRejection, (wrong, ada)) is not None
    wait_db(d, removed, "the wrong face was not removed")
    wait(d, lambda d: not all_css(d, f'.face-tile[data-face="{wrong}"]'), "the removed face is still shown")
    assert wrong not in confirmed(lib, ada)

    # 4. suggestions: accept with the keyboard; the next one appears without a reload
    question = open_page(d, base + "/suggestions", ".question")
    first_faces = question.get_attribute("data-faces")
    faces = [int(i) for i in first_faces.split(",")]
    suggested = int(question.get_attribute("data-person"))
    before = confirmed(lib, suggested)
    assert not set(faces) & before
    d.execute_script("window.__sameDocument = true;")
    shot(d, "suggestions")
    css(d, "body").send_keys("a")
    wait_db(d, lambda: confirmed(lib, suggested) >= set(faces), "A did not accept the suggestion")
    def next_shown(d) -> bool:  # type: ignore[no-untyped-def]
        from selenium.common.exceptions import StaleElementReferenceException

        try:
            q = all_css(d, ".question")
            return bool(q and q[0].get_attribute("data-faces") != first_faces) or bool(all_css(d, ".empty-state"))
        except StaleElementReferenceException:  # replaced while we looked
            return False
    wait(d, next_shown, "the next suggestion did not appear")
    assert d.execute_script("return window.__sameDocument === true;"), "the page reloaded"

    # 5. undo, one click away
    undo = css(d, "#app-undo")
    assert "accepted" in css(d, "#app-undo-label").text
    undo.click()
    wait_db(d, lambda: confirmed(lib, suggested) == before, "undo did not revert the accept")
    wait(d, lambda d: "Undone" in toast_text(d), "undo showed no message")
    assert confirmed(lib, ada) == set(group.face_ids) - {wrong}


def test_screenshots_of_the_other_pages(live, driver) -> None:  # type: ignore[no-untyped-def]
    base, lib = live
    d = driver
    open_page(d, base + "/people", ".person-card")
    assert len(all_css(d, ".person-card")) == len(browse.list_people(lib))
    shot(d, "people")
    open_page(d, base + "/unassigned", ".face-tile")
    assert len(all_css(d, ".face-tile")) == min(150, browse.count_unassigned(lib))
    shot(d, "unassigned")
    owned = [f for f in browse.unassigned_faces(lib, limit=500)]
    pid = owned[0].photo_id if owned else 1
    face = browse.photo_faces(lib, pid)[1][0]
    open_page(d, base + f"/photo?id={pid}&face={face.id}", ".face-box.selected")
    wait(d, lambda d: d.execute_script("return document.querySelector('.photo-img').naturalWidth > 0"),
         "the photo did not load")
    shot(d, "photo")
    # clicking a box selects that face (its own URL)
    css(d, ".face-box").click()
    wait(d, lambda d: "face=" in d.current_url, "clicking a box did not select the face")
    open_page(d, base + "/status", ".stats")
    shot(d, "status")


def test_fix_a_face_from_the_photo_view(live, driver) -> None:  # type: ignore[no-untyped-def]
    base, lib = live
    d = driver
    face = browse.unassigned_faces(lib, limit=1)[0]
    open_page(d, base + f"/photo?id={face.photo_id}&face={face.id}", "#photo-name-input")
    box = css(d, "#photo-name-input")
    box.clear()
    box.send_keys("Grace Hopper")
    css(d, "#photo-name").click()
    wait_db(d, lambda: (person_id(lib, "Grace Hopper") is not None
                        and face.id in confirmed(lib, person_id(lib, "Grace Hopper"))), "the face was not named")
    wait(d, lambda d: "Grace Hopper" in css(d, ".face-box.selected").get_attribute("textContent"),
         "the box does not show the new name")


def test_names_are_shown_as_text(live, driver) -> None:  # type: ignore[no-untyped-def]
    base, lib = live
    d = driver
    victim = browse.list_people(lib)[-1]
    evil = '<img id="pwned" src="x" onerror="window.__pwned=1">'
    labelling.rename_person(lib, victim.id, evil)
    open_page(d, base + "/people", ".person-card")
    names = [e.get_attribute("textContent") for e in all_css(d, ".person-name")]
    assert evil in names
    assert not all_css(d, "#pwned")
    assert not d.execute_script("return window.__pwned === 1;")
