"""The dashboard's pages, one module each (see docs/CONTRACTS.md, "Dashboard pages").

``PAGES`` lists the module names under ``dashboard.pages``; the app imports each one, in
this order, for its navigation and its callbacks. To add a page, append its module name.
A page may set ``NAV = False`` (reached by links only, e.g. a person's page) or
``NAV = "bottom"`` (listed at the foot of the navigation); the default is the main list.
"""

PAGES: list[str] = [
    "people",
    "review",
    "suggestions",
    "unassigned",
    "person",
    "photo",
    "status",
    "resemblance",
    "slideshow",
]
