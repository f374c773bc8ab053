"""Suggestions: "Is this <name>?" for one face or a small group at a time. Accept (A),
Reject (R) or Skip (S); the next question appears at once, without reloading the page,
so hundreds of faces go by quickly."""
from __future__ import annotations

from typing import Any, TypeAlias

from dash import Dash, Input, NoUpdate, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from organizer import browse, suggestions
from organizer.db import Library
from organizer.errors import InvalidRequest
from organizer.ids import as_id

from .. import components as ui

PATH = "/suggestions"
TITLE = "Suggestions"
#: faces of one question shown as thumbnails (a cluster's suggestion may hold more)
SHOWN_FACES = 8
#: the answer callback's outputs: the card, the current and skipped stores, the answer
#: bar's class, the last answer, the toast and the undo bar's tick
Answered: TypeAlias = tuple[html.Div | NoUpdate, dict[str, Any] | NoUpdate | None, list[int] | NoUpdate,
                            str | NoUpdate, html.Span | NoUpdate, html.Div | NoUpdate | None, str | NoUpdate]


def current_of(item: suggestions.SuggestionItem | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {"face_ids": list(item.face_ids), "person_id": item.person_id, "person_name": item.person_name}


def render_question(lib: Library, item: suggestions.SuggestionItem | None, remaining: int = 0) -> html.Div:
    if item is None:
        return ui.empty_state("No more suggestions",
                              "Every face the machine could place has been answered. Name more people in "
                              "Review groups and new suggestions appear here.", ("Review groups", "/review"))
    person = browse.get_person(lib, item.person_id)
    shown = item.face_ids[:SHOWN_FACES]
    faces: list[Component] = [html.Img(src=ui.thumb_url(fid), alt="", className="q-face", draggable="false")
                              for fid in shown]
    if len(item.face_ids) > len(shown):
        faces.append(html.Div(f"+{len(item.face_ids) - len(shown)}", className="q-face q-more"))
    who = ui.avatar(person.cover_face_id, person.name, size="xl")
    pct = max(0.0, min(1.0, float(item.confidence)))
    data: dict[str, Any] = {"data-faces": ",".join(map(str, item.face_ids)), "data-person": str(item.person_id)}
    return html.Div([
        html.Div([
            html.Div(faces, className="q-faces" + (" single" if len(shown) == 1 else "")),
            html.Div("?", className="q-vs"),
            html.Div([who, html.Div(person.name, className="q-person-name"),
                      html.Div(f"{person.face_count} faces", className="muted")], className="q-person"),
        ], className="q-row"),
        html.H2(["Is this ", html.Strong(item.person_name, id="suggestions-name"), "?"], className="q-title"),
        html.Div([html.Div(className="q-meter-fill", style={"width": f"{pct * 100:.0f}%"})], className="q-meter",
                 title=f"confidence {pct:.0%} (distance {item.distance:.2f})"),
        html.Div(f"{pct:.0%} sure · {ui.faces_text(len(item.face_ids))}"
                 + (f" · {remaining - 1} more question{'s' if remaining != 2 else ''} after this"
                    if remaining > 1 else ""),
                 className="muted center"),
    ], className="question", **data)


def answer(lib: Library, action: str, current: dict[str, Any] | None,
           skipped: list[int]) -> tuple[ui.Feedback | None, list[int]]:
    """Carry out one answer; returns (feedback or None for a skip, faces skipped so far)."""
    if not isinstance(current, dict):
        return ui.Feedback("There is no question to answer.", ok=False), skipped
    raw_ids = current.get("face_ids")
    try:
        ids = [as_id(i, "face id") for i in (raw_ids if isinstance(raw_ids, list) else [raw_ids])]
        person_id = as_id(current.get("person_id"), "person id")
    except InvalidRequest as exc:
        return ui.Feedback(str(exc), ok=False), skipped
    name = current.get("person_name") or "them"
    n = ui.faces_text(len(ids))
    if action == "skip":
        return None, [*skipped, *ids]

    def accept() -> str:
        suggestions.accept_suggestion(lib, ids, person_id)
        return f"Yes: {n} confirmed as {name}."

    def reject() -> str:
        suggestions.reject_suggestion(lib, ids, person_id)
        return f"No: {n} not {name}."

    if action == "accept":
        return ui.attempt(accept), skipped
    if action == "reject":
        return ui.attempt(reject), skipped
    return ui.Feedback(f"unknown answer {action!r}", ok=False), skipped


def next_question(lib: Library, skipped: list[int]) -> tuple[suggestions.SuggestionItem | None, int]:
    items = suggestions.all_suggestions(lib, skipped)
    return (items[0] if items else None), len(items)


def layout(lib: Library, **_query: str) -> html.Div:
    item, remaining = next_question(lib, [])
    key = lambda k: html.Kbd(k)  # noqa: E731
    return html.Div([
        ui.page_header("Suggestions", "The machine's best guesses, most certain first. "
                       "Keyboard: A = yes, R = no, S = skip, U = undo."),
        dcc.Store(id="suggestions-current", data=current_of(item)),
        dcc.Store(id="suggestions-skipped", data=[]),
        html.Div([
            html.Div(render_question(lib, item, remaining), id="suggestions-card"),
            html.Div([
                html.Button(["Reject ", key("R")], id="suggestions-reject", n_clicks=0, className="btn btn-lg btn-no"),
                html.Button(["Skip ", key("S")], id="suggestions-skip", n_clicks=0, className="btn btn-lg btn-light"),
                html.Button(["Accept ", key("A")], id="suggestions-accept", n_clicks=0, className="btn btn-lg btn-yes"),
            ], id="suggestions-actions", className="answer-bar" + ("" if item else " hidden")),
            html.Div(id="suggestions-last", className="last-answer"),
        ], className="card question-card"),
    ])


def register(app: Dash, lib: Library) -> None:
    buttons = ("suggestions-accept", "suggestions-reject", "suggestions-skip")

    @app.callback(
        Output("suggestions-card", "children"), Output("suggestions-current", "data"),
        Output("suggestions-skipped", "data"), Output("suggestions-actions", "className"),
        Output("suggestions-last", "children"),
        Output(ui.ALERT, "children", allow_duplicate=True), Output(ui.TICK, "data", allow_duplicate=True),
        *[Input(b, "n_clicks") for b in buttons],
        State("suggestions-current", "data"), State("suggestions-skipped", "data"),
        running=[(Output(b, "disabled"), True, False) for b in buttons],
        prevent_initial_call=True,
    )
    def _answer(_a: int | None, _r: int | None, _s: int | None, current: dict[str, Any] | None,
                skipped: list[int] | None) -> Answered:
        if not ui.fired():
            return (no_update,) * 7
        action = str(ctx.triggered_id).removeprefix("suggestions-")
        fb, skipped = answer(lib, action, current, list(skipped or []))
        item, remaining = next_question(lib, skipped)
        last = html.Span(fb.message, className="ok") if fb is not None and fb.ok else no_update
        alert = ui.toast(fb) if fb is not None and not fb.ok else no_update
        tick = ui.token() if fb is not None and fb.ok else no_update
        return (render_question(lib, item, remaining), current_of(item), skipped,
                "answer-bar" + ("" if item else " hidden"), last, alert, tick)
