"""Unassigned: every face that belongs to nobody yet, in stacks of look-alikes, biggest
first (:func:`organizer.stacks.every_stack`: the clustering's groups, then loose stacks of
what it left out), so a stray face is found next to its twins. Each stack is named in one
action: type the name, press Name. A stack is no claim that its faces are one person: click
the faces that do not belong ("not all the same") and they are left out, remembered as not
that person. Faces that look like no other are shown together at the end.

Clicked faces are also a selection for the bar at the bottom (name them, group them, mark
them "not a face"). Paged by faces, so a page never holds more than ``FACES_PER_PAGE``; a
stack cut by the page's end continues on the next page."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dash import ALL, Dash, Input, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from organizer import browse, labelling, stacks
from organizer.db import Library
from organizer.errors import InvalidRequest
from organizer.ids import as_id

from .. import components as ui

PATH = "/unassigned"
TITLE = "Unassigned"
PAGE = "unassigned"
FACES_PER_PAGE = 150
ACTIONS = ("assign", "split", "notface")
NAMES = "unassigned-names"


@dataclass(frozen=True)
class StackPiece:
    """The part of a stack on this page: ``face_ids`` shown, ``before``/``after`` faces of
    the stack on the pages before and after."""

    stack: stacks.Stack
    face_ids: list[int]
    before: int
    after: int


def page_pieces(all_stacks: list[stacks.Stack], page: int, per_page: int = FACES_PER_PAGE) -> list[StackPiece]:
    """The stacks (or parts of them) whose faces fall on ``page`` (faces counted in stack order)."""
    lo, hi = (page - 1) * per_page, page * per_page
    out: list[StackPiece] = []
    at = 0
    for st in all_stacks:
        end = at + st.size
        if end > lo and at < hi:
            a, b = max(lo, at) - at, min(hi, end) - at
            out.append(StackPiece(st, st.face_ids[a:b], a, st.size - b))
        if end >= hi:
            break
        at = end
    return out


def name_stack(lib: Library, face_ids: list[object], left_out: list[object], name: str | None, *,
               force: bool = False) -> ui.Feedback:
    """Name a stack's ticked faces; the unticked ones (``left_out``) are remembered as not
    that person, in the same operation."""
    def run() -> ui.Feedback:
        out = {as_id(i, "face id") for i in left_out}
        ids = [as_id(i, "face id") for i in face_ids]
        take = [i for i in ids if i not in out]
        leave = [i for i in ids if i in out]
        if not ids:
            raise InvalidRequest("there are no faces to name here any more")
        if not take:
            raise InvalidRequest("every face of this stack is left out; click a face to put it back")
        pid = labelling.assign_faces(lib, take, name or "", left_out=leave, force=force)
        person = browse.get_person(lib, pid)
        left = f"; {ui.faces_text(len(leave))} left out" if leave else ""
        return ui.Feedback(f"Named {ui.faces_text(len(take))} as {person.name}{left}.",
                           link=(f"Open {person.name}", ui.href("/person", id=pid)))
    return ui.attempt(run)


def retry(lib: Library, pending: dict[str, Any]) -> ui.Feedback:
    """"Do it anyway": the refused request of this page, forced."""
    if pending.get("kind") == "stack":
        ids, out, name = pending.get("face_ids"), pending.get("left_out"), pending.get("name")
        return name_stack(lib, ids if isinstance(ids, list) else [ids], out if isinstance(out, list) else [],
                          name if isinstance(name, str) else None, force=True)
    if pending.get("kind") == "selection":
        return ui.retry_selection(lib, pending)
    return ui.Feedback("There is nothing to confirm any more.", ok=False)


# --- layout -------------------------------------------------------------------------------------

def _stack_card(piece: StackPiece, faces: dict[int, browse.FaceInfo]) -> html.Section:
    st = piece.stack
    key = piece.face_ids[0]
    what = (dcc.Link(f"group {st.cluster_id}", href=ui.href("/review", cluster=st.cluster_id))
            if st.cluster_id is not None else "look-alikes")
    cut = []
    if piece.before:
        cut.append(f"{ui.faces_text(piece.before)} on the page before")
    if piece.after:
        cut.append(f"{ui.faces_text(piece.after)} on the next page")
    title: list[Component] = [html.H2(ui.faces_text(st.size)),
                              html.Span([what, *([" · " + "; ".join(cut)] if cut else [])], className="muted")]
    tiles = [ui.face_info_tile(PAGE, faces[f], show_person=True) for f in piece.face_ids if f in faces]
    return html.Section([
        dcc.Store(id={"type": "stack-faces", "index": key}, data=list(piece.face_ids)),
        html.Div([
            html.Div(title, className="card-title"),
            html.Div([
                dcc.Input(id={"type": "stack-input", "index": key}, type="text", list=NAMES, n_submit=0,
                          placeholder="Who are they?", autoComplete="off", className="input"),
                html.Button("Name", id={"type": "stack-name", "index": key}, n_clicks=0, className="btn btn-primary",
                            title="Name the ticked faces; the ones you clicked away are not this person"),
            ], className="name-form"),
        ], className="card-head"),
        ui.face_grid(tiles, size="sm"),
    ], className="card stack-card", id=f"unassigned-stack-{key}")


def _loners(pieces: list[StackPiece], faces: dict[int, browse.FaceInfo]) -> html.Section:
    tiles = [ui.face_info_tile(PAGE, faces[p.face_ids[0]], show_person=True) for p in pieces
             if p.face_ids[0] in faces]
    return html.Section([
        html.Div([html.Div([html.H2(ui.faces_text(len(tiles))),
                            html.Span("like no other yet: select faces and name them with the bar below",
                                      className="muted")], className="card-title")], className="card-head"),
        ui.face_grid(tiles, size="sm"),
    ], className="card stack-card loners", id="unassigned-loners")


def layout(lib: Library, **query: str) -> html.Div:
    every = stacks.every_stack(lib)
    total = sum(st.size for st in every)
    page = ui.clamp_page(ui.page_arg(query), total, FACES_PER_PAGE)
    pieces = page_pieces(every, page)
    faces = {f.id: f for f in browse.get_faces(lib, [f for p in pieces for f in p.face_ids])}
    body: list[ui.Child]
    if pieces:
        body = [_stack_card(p, faces) for p in pieces if p.stack.size > 1]
        alone = [p for p in pieces if p.stack.size == 1]
        if alone:
            body.append(_loners(alone, faces))
    else:
        body = [ui.empty_state("Nothing left", "Every face has a person (or was marked as not a face).")]
    return html.Div([
        ui.page_header("Unassigned faces",
                       f"{ui.faces_text(total)} without a person, in stacks of look-alikes, biggest first. "
                       "Click the faces that do not belong (they are left out), then name the stack. "
                       "A name with “?” is the machine's guess, not yet confirmed."),
        ui.names_datalist(NAMES),
        ui.confirm_slot(PAGE),
        html.Div(body, className="stack"),
        ui.pager(PATH, {}, page, total, FACES_PER_PAGE),
        ui.selection_bar(PAGE, ACTIONS, NAMES),
    ], className="with-selbar unassigned-page")


# --- callbacks ----------------------------------------------------------------------------------

def register(app: Dash, lib: Library) -> None:
    ui.register_autocomplete(app, lib, NAMES, Input("unassigned-sel-name", "value"),
                             Input({"type": "stack-input", "index": ALL}, "value"))
    ui.register_selection(app, lib, PAGE, ACTIONS, confirm=True)
    ui.register_confirm(app, PAGE, lambda pending: retry(lib, pending))

    @app.callback(*ui.confirm_outputs(PAGE),
                  Input({"type": "stack-name", "index": ALL}, "n_clicks"),
                  Input({"type": "stack-input", "index": ALL}, "n_submit"),
                  State({"type": "stack-input", "index": ALL}, "value"),
                  State({"type": "stack-input", "index": ALL}, "id"),
                  State({"type": "stack-faces", "index": ALL}, "data"),
                  State({"type": "stack-faces", "index": ALL}, "id"),
                  State("unassigned-selection", "data"),
                  prevent_initial_call=True)
    def _name(_clicks: list[int | None], _submits: list[int | None], values: list[str | None],
              value_ids: list[dict[str, Any]], members: list[Any], member_ids: list[dict[str, Any]],
              selection: dict[str, Any] | None) -> ui.ConfirmResult:
        if not ui.fired() or not isinstance(ctx.triggered_id, dict):
            return no_update, no_update, no_update, no_update
        key = ctx.triggered_id.get("index")
        name = {i.get("index"): v for i, v in zip(value_ids, values, strict=False)}.get(key)
        faces = {i.get("index"): m for i, m in zip(member_ids, members, strict=False)}.get(key)
        ids = faces if isinstance(faces, list) else []
        left = [f for f in ui.selected_ids(selection) if f in ids]
        return ui.respond_or_ask(PAGE, name_stack(lib, ids, left, name),
                                 {"kind": "stack", "face_ids": ids, "left_out": left, "name": name})
