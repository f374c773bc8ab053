"""Suggestions: batch questions. "Are these 37 faces Ana Palacio?" as a grid, most certain
first, with her cover and a few of her confirmed faces beside it. Every face starts
ticked; click a face (or Space on it) to untick it. Accept (A) confirms the ticked faces and
remembers the unticked ones as "not her", in one operation that one Undo takes back;
Reject (R) says none of them is her; Skip (S) leaves them for later. The next question
appears at once, without reloading the page.

The questions come from :mod:`organizer.questions` (one per named person, biggest first).
An accept that would give the person two faces of one photo shows the one-line reason with
"Do it anyway" (the accept forced)."""
from __future__ import annotations

from typing import Any, TypeAlias

from dash import ALL, ClientsideFunction, Dash, Input, NoUpdate, Output, State, ctx, dcc, html, no_update

from organizer import browse, questions
from organizer.db import Library
from organizer.errors import InvalidRequest
from organizer.ids import as_id

from .. import components as ui

PATH = "/suggestions"
TITLE = "Suggestions"
PAGE = "suggestions"
#: the person's confirmed faces shown beside a question (the core picks the nearest)
EVIDENCE_SHOWN = questions.EVIDENCE_SHOWN
#: the answer callback's outputs: the card, the current and skipped stores, the answer
#: bar's class, the last answer, the toast, the undo bar's tick and the "Do it anyway?" box
Answered: TypeAlias = tuple[html.Div | NoUpdate, dict[str, Any] | NoUpdate | None, list[int] | NoUpdate,
                            str | NoUpdate, html.Span | NoUpdate, html.Div | NoUpdate | None, str | NoUpdate,
                            html.Div | NoUpdate | None]
BUTTONS = ("suggestions-accept", "suggestions-reject", "suggestions-skip")
_NOTHING: Answered = (no_update, no_update, no_update, no_update, no_update, no_update, no_update, no_update)


def current_of(item: questions.BatchQuestion | None) -> dict[str, Any] | None:
    """The question as the page keeps it in the browser: every offered face, who, and the
    faces the user unticked so far (``left_out``, kept up to date in the browser)."""
    if item is None:
        return None
    return {"face_ids": list(item.face_ids), "person_id": item.person_id, "person_name": item.person_name,
            "left_out": []}


def _tile(face_id: int, confidence: float) -> html.Div:
    """A ticked face of the question: a button-like square (click or Space unticks it)."""
    props: dict[str, Any] = {"data-face": str(face_id), "role": "checkbox", "aria-checked": "true",
                             "aria-label": f"face {face_id}, {confidence:.0%} sure"}
    return html.Div([
        html.Img(src=ui.thumb_url(face_id), alt="", draggable="false", className="face-img"),
        html.Span(className="face-check"),
        html.Span(f"{confidence:.0%}", className="face-badge"),
    ], id={"type": "suggestions-face", "index": int(face_id)}, className="face-tile batch-face ticked",
        n_clicks=0, tabIndex="0", title="Click or press Space to untick", **props)


def _remaining_text(item: questions.BatchQuestion, remaining: int) -> str:
    parts = ["most certain first"]
    if item.more:
        parts.append(f"{ui.faces_text(item.more)} more of {item.person_name} next")
    if remaining > 1:
        parts.append(f"{remaining - 1} more question{'s' if remaining != 2 else ''} after this")
    return " · ".join(parts)


def render_question(lib: Library, item: questions.BatchQuestion | None, remaining: int = 0) -> html.Div:
    """The question card: the person (cover, name, a few confirmed faces) and the grid of
    offered faces, all ticked."""
    if item is None:
        return ui.empty_state("No more suggestions",
                              "Every face the machine could place has been answered. Name more people in "
                              "Review groups and new suggestions appear here.", ("Review groups", "/review"))
    person = browse.get_person(lib, item.person_id)
    cover = item.cover_face_id if item.cover_face_id is not None else person.cover_face_id
    evidence = [html.Img(src=ui.thumb_url(fid), alt="", className="q-evidence-face", draggable="false")
                for fid in item.evidence_face_ids[:EVIDENCE_SHOWN]]
    n = len(item.face_ids)
    data: dict[str, Any] = {"data-faces": ",".join(map(str, item.face_ids)), "data-person": str(item.person_id)}
    return html.Div([
        html.Div([
            ui.avatar(cover, person.name, size="lg"),
            html.Div([
                html.Div(person.name, className="q-person-name"),
                html.Div(f"{ui.faces_text(person.face_count)} so far", className="muted"),
                html.Div(evidence, className="q-evidence", title=f"Faces you confirmed as {person.name}"),
            ], className="q-person-info"),
        ], className="q-person batch-person"),
        html.H2(["Are these ", ui.faces_text(n), " ", html.Strong(item.person_name, id="suggestions-name"), "?"],
                className="q-title"),
        html.Div(f"All {n} ticked: untick the faces that are not {item.person_name}, then Accept.",
                 id="suggestions-tickline", className="muted center"),
        ui.face_grid([_tile(fid, conf) for fid, conf in zip(item.face_ids, item.confidences, strict=True)],
                     grid_id="suggestions-grid", size="sm"),
        html.Div(_remaining_text(item, remaining), className="muted center"),
    ], className="question batch-question", **data)


def _parse(current: object) -> tuple[list[int], list[int], int, str]:
    """(offered faces, unticked faces among them, person id, name) of the browser's store;
    InvalidRequest for anything that is not ids."""
    if not isinstance(current, dict):
        raise InvalidRequest("There is no question to answer.")
    raw = current.get("face_ids")
    ids = [as_id(i, "face id") for i in (raw if isinstance(raw, list) else [raw])]
    raw_out = current.get("left_out") or []
    out = {as_id(i, "face id") for i in (raw_out if isinstance(raw_out, list) else [raw_out])}
    person_id = as_id(current.get("person_id"), "person id")
    name = current.get("person_name")
    return ids, [i for i in ids if i in out], person_id, name if isinstance(name, str) and name else "them"


def answer(lib: Library, action: str, current: dict[str, Any] | None, skipped: list[int], *,
           force: bool = False) -> tuple[ui.Feedback | None, list[int]]:
    """Carry out one answer ("accept" the ticked faces, the unticked ones "not this person";
    "reject" all; "skip"); returns (feedback or None for a skip, faces skipped so far).
    ``force``: accept even when it gives the person two faces of one photo."""
    try:
        ids, left_out, person_id, name = _parse(current)
    except InvalidRequest as exc:
        return ui.Feedback(str(exc), ok=False), skipped
    if action == "skip":
        return None, [*skipped, *ids]
    ticked = [i for i in ids if i not in left_out]

    def reject() -> str:
        questions.reject_batch(lib, person_id, ids)
        return f"No: {ui.faces_text(len(ids))} not {name}."

    def accept() -> str:
        if not ticked:  # every face unticked: none of them is this person
            return reject()
        done = questions.accept_batch(lib, person_id, ticked, left_out, force=force)
        left = f"; {ui.faces_text(len(done.left_out))} not" if done.left_out else ""
        return f"Yes: {ui.faces_text(len(done.accepted))} confirmed as {done.person_name}{left}."

    if action == "accept":
        return ui.attempt(accept), skipped
    if action == "reject":
        return ui.attempt(reject), skipped
    return ui.Feedback(f"unknown answer {action!r}", ok=False), skipped


def next_question(lib: Library, skipped: list[int]) -> tuple[questions.BatchQuestion | None, int]:
    """The biggest open batch question (faces in ``skipped`` left out) and how many there are."""
    items = questions.batch_questions(lib, skipped)
    return (items[0] if items else None), len(items)


def layout(lib: Library, **_query: str) -> html.Div:
    item, remaining = next_question(lib, [])
    key = lambda k: html.Kbd(k)  # noqa: E731
    return html.Div([
        ui.page_header("Suggestions", "Faces the machine thinks are someone you named, one person at a time. "
                       "Untick the wrong ones (click, or Space on a face), then Accept. "
                       "Keyboard: A = accept the ticked faces, R = none of them, S = skip, U = undo."),
        dcc.Store(id="suggestions-current", data=current_of(item)),
        dcc.Store(id="suggestions-skipped", data=[]),
        html.Div(id="suggestions-confirm", className="confirm-slot"),
        html.Div([
            html.Div(render_question(lib, item, remaining), id="suggestions-card"),
            html.Div([
                html.Button(["Reject all ", key("R")], id="suggestions-reject", n_clicks=0,
                            className="btn btn-lg btn-no", title="None of these faces is this person"),
                html.Button(["Skip ", key("S")], id="suggestions-skip", n_clicks=0, className="btn btn-lg btn-light"),
                html.Button(["Accept ticked ", key("A")], id="suggestions-accept", n_clicks=0,
                            className="btn btn-lg btn-yes",
                            title="The ticked faces are this person; the unticked ones are not"),
            ], id="suggestions-actions", className="answer-bar" + ("" if item else " hidden")),
            html.Div(id="suggestions-last", className="last-answer"),
        ], className="card question-card batch-card"),
    ], className="batch-page")


def _next(lib: Library, fb: ui.Feedback | None, current: dict[str, Any] | None, skipped: list[int]) -> Answered:
    """The outputs after an answer: the next question on success or skip; on a same-photo
    refusal the question stays, with "Do it anyway?"; any other error only shows it."""
    if fb is not None and fb.needs_force:
        return (no_update, no_update, no_update, no_update, no_update, no_update, no_update,
                ui.confirm_box(PAGE, fb.message))
    if fb is not None and not fb.ok:
        return (no_update, no_update, no_update, no_update, no_update, ui.toast(fb), no_update, None)
    item, remaining = next_question(lib, skipped)
    last = html.Span(fb.message, className="ok") if fb is not None else no_update
    tick = ui.token() if fb is not None else no_update
    return (render_question(lib, item, remaining), current_of(item), skipped,
            "answer-bar" + ("" if item else " hidden"), last, no_update, tick, None)


def _outputs(duplicate: bool) -> list[Output]:
    return [Output("suggestions-card", "children", allow_duplicate=duplicate),
            Output("suggestions-current", "data", allow_duplicate=duplicate),
            Output("suggestions-skipped", "data", allow_duplicate=duplicate),
            Output("suggestions-actions", "className", allow_duplicate=duplicate),
            Output("suggestions-last", "children", allow_duplicate=duplicate),
            Output(ui.ALERT, "children", allow_duplicate=True), Output(ui.TICK, "data", allow_duplicate=True),
            Output("suggestions-confirm", "children", allow_duplicate=duplicate)]


def register(app: Dash, lib: Library) -> None:
    # ticking runs in the browser (instant); it keeps the unticked faces in the current store
    app.clientside_callback(
        ClientsideFunction("questions", "toggle"),
        Output({"type": "suggestions-face", "index": ALL}, "className"),
        Output({"type": "suggestions-face", "index": ALL}, "aria-checked"),
        Output("suggestions-current", "data", allow_duplicate=True),
        Output("suggestions-tickline", "children"),
        Input({"type": "suggestions-face", "index": ALL}, "n_clicks"),
        State({"type": "suggestions-face", "index": ALL}, "id"),
        State("suggestions-current", "data"),
        prevent_initial_call=True,
    )

    @app.callback(*_outputs(False), *[Input(b, "n_clicks") for b in BUTTONS],
                  State("suggestions-current", "data"), State("suggestions-skipped", "data"),
                  running=[(Output(b, "disabled"), True, False) for b in BUTTONS],
                  prevent_initial_call=True)
    def _answer(_a: int | None, _r: int | None, _s: int | None, current: dict[str, Any] | None,
                skipped: list[int] | None) -> Answered:
        if not ui.fired():
            return _NOTHING
        action = str(ctx.triggered_id).removeprefix("suggestions-")
        fb, done = answer(lib, action, current, list(skipped or []))
        return _next(lib, fb, current, done)

    @app.callback(*_outputs(True),
                  Input("suggestions-force", "n_clicks"), Input("suggestions-force-cancel", "n_clicks"),
                  State("suggestions-current", "data"), State("suggestions-skipped", "data"),
                  prevent_initial_call=True)
    def _force(_go: int | None, _cancel: int | None, current: dict[str, Any] | None,
               skipped: list[int] | None) -> Answered:
        if not ui.fired():
            return _NOTHING
        if ctx.triggered_id != "suggestions-force":
            return (no_update, no_update, no_update, no_update, no_update, no_update, no_update, None)
        fb, done = answer(lib, "accept", current, list(skipped or []), force=True)
        return _next(lib, fb, current, done)
