"""Batch questions in a real headless Chromium: a question answered from the keyboard
alone (Space focuses the first face, Tab moves on, Space unticks, A accepts), checked in
the database after; and the Suggestions page at a phone's size (390 x 844) is no wider
than the screen. Uses the live server and browser of test_dashboard_browser.py (a
clustered LFW subset with every group but the largest named, so there are questions)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from organizer.db import Library
from organizer.models import Face, FaceRejection

from .test_dashboard_browser import all_css, confirmed, css, driver, live, open_page, wait, wait_db

pytestmark = [pytest.mark.browser,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*")]
__all__ = ["driver", "live"]  # fixtures, used by name
PHONE = (390, 844)


def rejected(lib: Library, face_id: int, person_id: int) -> bool:
    with lib.session() as s:
        return s.get(FaceRejection, (face_id, person_id)) is not None


def owner(lib: Library, face_id: int) -> int | None:
    with lib.session() as s:
        return s.scalar(select(Face.person_id).where(Face.id == face_id))


def test_a_batch_question_answered_with_the_keyboard_and_one_untick(live, driver) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    base, lib = live
    d = driver
    question = open_page(d, base + "/suggestions", ".batch-question")
    faces = [int(i) for i in question.get_attribute("data-faces").split(",")]
    person = int(question.get_attribute("data-person"))
    assert len(faces) >= 2, "the first question should offer several faces"
    tiles = all_css(d, ".batch-face")
    assert [int(t.get_attribute("data-face")) for t in tiles] == faces
    assert all("ticked" in t.get_attribute("class").split() for t in tiles)  # all ticked at first
    before = confirmed(lib, person)
    d.execute_script("window.__sameDocument = true; document.activeElement && document.activeElement.blur();")

    keys = ActionChains(d)
    keys.send_keys(" ").perform()  # Space with nothing focused: the first face
    wait(d, lambda d: d.execute_script("return document.activeElement.dataset.face") == str(faces[0]),
         "Space did not focus the first face")
    ActionChains(d).send_keys(Keys.TAB).perform()
    wait(d, lambda d: d.execute_script("return document.activeElement.dataset.face") == str(faces[1]),
         "Tab did not move to the second face")
    ActionChains(d).send_keys(" ").perform()  # untick it
    left = faces[1]
    wait(d, lambda d: "unticked" in css(d, f'.batch-face[data-face="{left}"]').get_attribute("class"),
         "Space did not untick the face")
    assert css(d, f'.batch-face[data-face="{left}"]').get_attribute("aria-checked") == "false"
    assert f"{len(faces) - 1} of {len(faces)} ticked" in css(d, "#suggestions-tickline").text
    ActionChains(d).send_keys("a").perform()

    ticked = set(faces) - {left}
    wait_db(d, lambda: confirmed(lib, person) == before | ticked and rejected(lib, left, person),
            "A did not accept exactly the ticked faces")
    assert owner(lib, left) != person
    wait(d, lambda d: not all_css(d, f'.batch-face[data-face="{faces[0]}"]'), "the next question did not appear")
    assert d.execute_script("return window.__sameDocument === true;"), "the page reloaded"
    assert "accepted" in css(d, "#app-undo-label").text

    # one Undo takes the whole answer back, the "not this person" included
    css(d, "#app-undo").click()
    wait_db(d, lambda: confirmed(lib, person) == before and not rejected(lib, left, person),
            "undo did not take the batch back")


def test_the_suggestions_page_fits_a_phone(live, driver) -> None:  # type: ignore[no-untyped-def]
    base, _lib = live
    d = driver
    width, height = PHONE
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 3, "mobile": True})
    try:
        open_page(d, base + "/suggestions", ".batch-question")
        # a phone zooms out (a wider layout viewport) when the page is wider than the screen
        inner = d.execute_script("return window.innerWidth")
        assert inner == width, f"the page does not fit: the phone shows it {inner} px wide"
        wait(d, lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"),
             "images never loaded")
        scroll = d.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width, f"the page is {scroll} px wide on a {width} px screen"
        for button in ("#suggestions-accept", "#suggestions-reject", "#suggestions-skip"):
            right = d.execute_script(f"return document.querySelector('{button}').getBoundingClientRect().right")
            assert right <= width, f"{button} reaches {right} px"
        # a face is toggled by a tap too (no hover needed)
        tile = all_css(d, ".batch-face")[0]
        tile.click()
        wait(d, lambda d: "unticked" in all_css(d, ".batch-face")[0].get_attribute("class"), "a tap did not untick")
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
