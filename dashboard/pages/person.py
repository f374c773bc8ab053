"""One person: all their faces (paged) with the select-and-fix actions, and the person's
own settings: rename, merge into someone else, hide, cover picture, birth date."""
from __future__ import annotations

from typing import Any, TypeAlias

from dash import Dash, Input, NoUpdate, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from organizer import browse, labelling
from organizer.db import Library

from .. import components as ui

PATH = "/person"
TITLE = "Person"
NAV = False
FACES_PER_PAGE = 120
ACTIONS = ("remove", "move", "notface", "cover")
NAMES = "person-names"
#: what the merge callback sets: toast, refresh, URL search, confirmation box, pending request
MergeResult: TypeAlias = tuple[html.Div | NoUpdate | None, str | NoUpdate, str | NoUpdate,
                               html.Div | NoUpdate | None, dict[str, Any] | NoUpdate | None]


# --- the actions (plain functions: the callbacks only route to them) ----------------------------

def rename(lib: Library, person_id: int, new_name: str | None) -> ui.Feedback:
    def run() -> str:
        old = browse.get_person(lib, person_id).name
        labelling.rename_person(lib, person_id, new_name or "")
        return f"Renamed {old} to {browse.get_person(lib, person_id).name}."
    return ui.attempt(run)


def merge_into(lib: Library, person_id: int, target_name: str | None, *, force: bool = False) -> ui.Feedback:
    def run() -> ui.Feedback:
        source = browse.get_person(lib, person_id)
        target = browse.find_person(lib, target_name or "")
        labelling.merge_people(lib, source.id, target.id, force=force)
        return ui.Feedback(f"Merged {source.name} into {target.name}.",
                           link=(f"Open {target.name}", ui.href(PATH, id=target.id)))
    return ui.attempt(run)


def _retry(lib: Library, pending: dict[str, Any]) -> ui.Feedback:
    """"Do it anyway" on this page: a forced merge, or a forced selection action (Move)."""
    if pending.get("kind") == "merge":
        target = pending.get("target")
        source = pending.get("person_id")
        if not isinstance(source, int):
            return ui.Feedback("There is nothing to confirm any more.", ok=False)
        return merge_into(lib, source, target if isinstance(target, str) else None, force=True)
    return ui.retry_selection(lib, pending)


def toggle_hidden(lib: Library, person_id: int) -> ui.Feedback:
    def run() -> str:
        person = browse.get_person(lib, person_id)
        labelling.set_hidden(lib, person_id, not person.hidden)
        if person.hidden:
            return f"{person.name} is shown in People again."
        return f"{person.name} is hidden from People (their faces stay theirs)."
    return ui.attempt(run)


def save_birth_date(lib: Library, person_id: int, text: str | None) -> ui.Feedback:
    def run() -> str:
        birth = labelling.parse_birth_date(text)
        labelling.set_birth_date(lib, person_id, birth)
        name = browse.get_person(lib, person_id).name
        return f"Birth date of {name} set to {birth.isoformat()}." if birth else f"Birth date of {name} cleared."
    return ui.attempt(run)


# --- layout ----------------------------------------------------------------------------------------

def _settings(p: browse.PersonSummary) -> html.Details:
    def row(label: str, *controls: Component) -> html.Div:
        return html.Div([html.Label(label, className="field-label"), html.Div(list(controls), className="field")],
                        className="field-row")

    return html.Details([
        html.Summary("Edit person"),
        row("Name",
            dcc.Input(id="person-rename-input", type="text", value=p.name, className="input", n_submit=0,
                      autoComplete="off"),
            html.Button("Rename", id="person-rename", n_clicks=0, className="btn btn-light")),
        row("Merge into",
            dcc.Input(id="person-merge-input", type="text", list=NAMES, placeholder="Another person's name",
                      className="input", autoComplete="off", n_submit=0),
            html.Button("Merge", id="person-merge", n_clicks=0, className="btn btn-light",
                        title=f"All of {p.name}'s faces go to that person and {p.name} disappears")),
        row("Birth date",
            dcc.Input(id="person-birth-input", type="text", placeholder="YYYY-MM-DD", className="input input-date",
                      value=p.birth_date.isoformat() if p.birth_date else "", n_submit=0, autoComplete="off"),
            html.Button("Save", id="person-birth", n_clicks=0, className="btn btn-light")),
        row("In People",
            html.Button("Show again" if p.hidden else "Hide", id="person-hide", n_clicks=0,
                        className="btn btn-light")),
    ], className="card settings", open=False)


def layout(lib: Library, **query: str) -> html.Div:
    person_id = ui.int_arg(query, "id")
    if person_id is None:
        return ui.empty_state("Which person?", "Open a person from the People page.", ("People", "/people"))
    p = browse.get_person(lib, person_id)
    page = ui.clamp_page(ui.page_arg(query), p.face_count, FACES_PER_PAGE)
    faces = browse.person_faces(lib, person_id, limit=FACES_PER_PAGE, offset=(page - 1) * FACES_PER_PAGE)
    meta = [f"{ui.faces_text(p.face_count)} in {p.photo_count} photo{'s' if p.photo_count != 1 else ''}"]
    if p.face_count > p.confirmed_count:
        meta.append(f"{p.face_count - p.confirmed_count} found automatically")
    if p.birth_date:
        meta.append(f"born {p.birth_date.isoformat()}")
    if p.hidden:
        meta.append("hidden")
    header = html.Header([
        ui.avatar(p.cover_face_id, p.name, size="xl"),
        html.Div([html.H1(p.name, id="person-title"), html.P(" · ".join(meta), className="subtitle")],
                 className="page-title"),
    ], className="person-header")
    if faces:
        body: Component = ui.face_grid([ui.face_info_tile("person", f) for f in faces])
    else:
        body = ui.empty_state("No faces", f"{p.name} has no faces right now.")
    return html.Div([
        dcc.Link("← People", href="/people", className="back-link"),
        header,
        _settings(p),
        dcc.Store(id="person-context", data=p.id),
        ui.names_datalist(NAMES),
        ui.confirm_slot("person"),
        body,
        ui.pager(PATH, {"id": p.id}, page, p.face_count, FACES_PER_PAGE),
        ui.selection_bar("person", ACTIONS, NAMES, remove_label=f"Not {p.name}"),
    ], className="with-selbar")


def register(app: Dash, lib: Library) -> None:
    ui.register_autocomplete(app, lib, NAMES, Input("person-merge-input", "value"), Input("person-sel-name", "value"))
    ui.register_selection(app, lib, "person", ACTIONS, context_id="person-context", confirm=True)
    ui.register_confirm(app, "person", lambda pending: _retry(lib, pending))

    @app.callback(*ui.action_outputs(),
                  Input("person-rename", "n_clicks"), Input("person-rename-input", "n_submit"),
                  Input("person-birth", "n_clicks"), Input("person-birth-input", "n_submit"),
                  Input("person-hide", "n_clicks"),
                  State("person-context", "data"), State("person-rename-input", "value"),
                  State("person-birth-input", "value"),
                  prevent_initial_call=True)
    def _edit(_r: int | None, _rs: int | None, _b: int | None, _bs: int | None, _h: int | None,
              person_id: int, new_name: str | None, birth: str | None) -> ui.ActionResult:
        # person_id: the person-context store, which holds the page's person id (checked by the library)
        if not ui.fired():
            return no_update, no_update
        trigger = ctx.triggered_id
        if trigger in ("person-rename", "person-rename-input"):
            return ui.respond(rename(lib, person_id, new_name))
        if trigger in ("person-birth", "person-birth-input"):
            return ui.respond(save_birth_date(lib, person_id, birth))
        return ui.respond(toggle_hidden(lib, person_id))

    @app.callback(*ui.action_outputs(), Output(ui.URL, "search", allow_duplicate=True),
                  Output("person-confirm", "children", allow_duplicate=True),
                  Output("person-pending", "data", allow_duplicate=True),
                  Input("person-merge", "n_clicks"), Input("person-merge-input", "n_submit"),
                  State("person-context", "data"), State("person-merge-input", "value"),
                  prevent_initial_call=True)
    def _merge(_m: int | None, _ms: int | None, person_id: int, target: str | None) -> MergeResult:
        if not ui.fired():
            return no_update, no_update, no_update, no_update, no_update
        fb = merge_into(lib, person_id, target)
        if fb.needs_force:  # both have a face in one photo: ask first
            pending = {"kind": "merge", "person_id": person_id, "target": target}
            return no_update, no_update, no_update, ui.confirm_box("person", fb.message), pending
        alert, refresh = ui.respond(fb)
        # the person is gone after a merge: show the one they were merged into
        search = "?" + fb.link[1].split("?", 1)[1] if fb.ok and fb.link else no_update
        return alert, refresh, search, None, None
