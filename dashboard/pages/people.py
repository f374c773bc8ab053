"""People: everyone you have named, with a cover face and a photo count; search by name,
hidden people behind a toggle."""
from __future__ import annotations

from dash import Dash, Input, Output, dcc, html

from organizer import browse
from organizer.db import Library

from .. import components as ui

PATH = "/people"
TITLE = "People"
#: cards rendered at most; the search box finds anyone beyond that
MAX_CARDS = 300


def people_cards(lib: Library, search: str = "", include_hidden: bool = False) -> html.Div:
    """The grid of person cards for a search (what the search callback returns)."""
    people = browse.list_people(lib, include_hidden=include_hidden, search=search or "")
    if not people:
        if search:
            return ui.empty_state("Nobody found", f"No person's name contains “{search.strip()}”.")
        return ui.empty_state("No people yet",
                              "Name a group of faces and the person appears here.", ("Review groups", "/review"))
    cards = [ui.person_card(p) for p in people[:MAX_CARDS]]
    more: list[html.P] = []
    if len(people) > MAX_CARDS:
        more = [html.P(f"Showing {MAX_CARDS} of {len(people)} people; search to find the others.",
                       className="muted center")]
    return html.Div([html.Div(cards, className="people-grid"), *more])


def _todo_banner(lib: Library) -> html.Div | None:
    groups = browse.count_clusters(lib)
    if not groups:
        return None
    text = f"{groups} group{'s' if groups != 1 else ''} of faces waiting for a name"
    return html.Div([html.Span(text), dcc.Link("Review them →", href="/review", className="banner-link")],
                    className="banner")


def layout(lib: Library, q: str = "", hidden: str = "", **_query: str) -> html.Div:
    include_hidden = hidden in ("1", "true", "yes")
    tools = html.Div([
        dcc.Input(id="people-search", type="search", value=q, placeholder="Search people…", debounce=False,
                  className="input input-search", autoComplete="off"),
        dcc.Checklist(id="people-hidden", options=[{"label": " Show hidden", "value": "hidden"}],
                      value=["hidden"] if include_hidden else [], className="switch", inputClassName="switch-input"),
    ], className="tools-row")
    return html.Div([
        ui.page_header("People", "Everyone you have named. Click a person to see and fix their faces.", tools),
        _todo_banner(lib),
        html.Div(people_cards(lib, q, include_hidden), id="people-grid"),
    ])


def register(app: Dash, lib: Library) -> None:
    @app.callback(Output("people-grid", "children"),
                  Input("people-search", "value"), Input("people-hidden", "value"),
                  prevent_initial_call=True)
    def _search(search: str | None, hidden: list[str] | None) -> html.Div:
        return people_cards(lib, search or "", "hidden" in (hidden or []))
