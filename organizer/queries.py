"""What every part of the library agrees on: which faces count, how a name is stored, and
how a person is found from what a user typed or a page sent.

Shared by the read side (:mod:`organizer.browse`) and the write side
(:mod:`organizer.labelling`, :mod:`organizer.suggestions`, :mod:`organizer.clustering`,
:mod:`organizer.resemblance`), so none of them imports the other for these. Each function
takes an open session (or nothing); none opens a transaction.
"""
from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from .errors import InvalidRequest, PersonNotFound
from .ids import as_id, is_id
from .models import Assignment, Face, Person

#: the longest name a person can have
NAME_MAX = 200
#: a typed reference that is a row id when nobody has it as a name
_DIGITS = re.compile(r"[0-9]+")
#: a typed number longer than this is no id (ids have at most 19 digits, plus leading zeros)
_ID_DIGITS = 40


# --- which faces ------------------------------------------------------------------------------

def live() -> ColumnElement[bool]:
    """SQL condition: the face was not marked "not a face".

    Written ``is_face IS NOT 0`` (the column is NOT NULL, so this is ``is_face IS 1``) on
    purpose: SQLite cannot use the index on ``is_face`` for it. That index matches almost
    every row, yet without table statistics the planner prefers it over the person and
    cluster indexes and reads the whole table (measured: 200 ms instead of 1 ms for the
    cluster sizes at 100k faces)."""
    return Face.is_face.is_not(False)


def owned() -> ColumnElement[bool]:
    """SQL condition: the face belongs to its person (confirmed or auto-assigned)."""
    return and_(Face.person_id.is_not(None), Face.assignment.in_([Assignment.confirmed, Assignment.auto]))


def unowned() -> ColumnElement[bool]:
    """SQL condition: the face belongs to nobody yet (possibly with a pending suggestion)."""
    return or_(Face.person_id.is_(None), Face.assignment.is_(None), Face.assignment == Assignment.suggested)


class FaceState(NamedTuple):
    """Whose a face is and which group it waits in: what clustering compares before it
    writes, and what the suggestion index keeps per face."""

    person_id: int | None
    assignment: Assignment | None
    cluster_id: int | None
    confidence: float | None = None

    def same_place(self, other: FaceState) -> bool:
        """Same person, assignment and group (the confidence alone is no change)."""
        return self[:3] == other[:3]

    @property
    def is_open(self) -> bool:
        """Belongs to nobody yet (a pending suggestion included): :func:`unowned` in Python."""
        return self.person_id is None or self.assignment in (None, Assignment.suggested)

    @property
    def confirmed_for(self) -> int | None:
        """The person the user confirmed this face as, else None."""
        return self.person_id if self.assignment == Assignment.confirmed else None


# --- names ------------------------------------------------------------------------------------

def normalise_name(name: object) -> str:
    """A name in the one form it is stored and compared in: Unicode NFC (so "José" typed
    with a combining accent is the same person as the precomposed one), without invisible
    format characters (zero-width spaces and joiners, direction marks, BOM), whitespace
    collapsed. The same rule as revision 0003 applies to names stored before it."""
    text = unicodedata.normalize("NFC", str(name or ""))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


def clean_name(name: object) -> str:
    """A person's name as stored (:func:`normalise_name`); empty or too long is refused."""
    text = normalise_name(name)
    if not text:
        raise InvalidRequest("a person's name cannot be empty")
    if len(text) > NAME_MAX:
        raise InvalidRequest(f"a person's name can have at most {NAME_MAX} characters")
    return text


def faces_text(n: int) -> str:
    """"1 face", "2 faces": how every message counts faces."""
    return f"{n} face" if n == 1 else f"{n} faces"


# --- people -----------------------------------------------------------------------------------

def people_named(s: Session, name: str) -> list[Person]:
    """Everyone called ``name`` when case is ignored (both sides :func:`normalise_name`d),
    lowest id first.

    Case is folded in Python: SQLite's lower() knows only ASCII, so "élodie" would
    never find "Élodie" there."""
    folded = normalise_name(name).casefold()
    if not folded:
        return []
    ids = [pid for pid, stored in s.execute(select(Person.id, Person.name).order_by(Person.id))
           if normalise_name(stored).casefold() == folded]
    return [p for p in (s.get(Person, i) for i in ids) if p is not None]


def person_by_name(s: Session, name: str) -> Person | None:
    """The person called ``name``: an exact match, else the one case-insensitive match
    (:func:`people_named`); None when there is none or several."""
    text = normalise_name(name)
    if not text:
        return None
    exact = s.scalar(select(Person).where(Person.name == text))
    if exact is not None:
        return exact
    matches = people_named(s, text)
    return matches[0] if len(matches) == 1 else None


def require_person(s: Session, person_id: object) -> Person:
    """The person with this id; PersonNotFound for any other value (unknown, 0, huge, not a number)."""
    person = s.get(Person, person_id) if is_id(person_id) else None
    if person is None:
        raise PersonNotFound(f"there is no person with id {person_id}")
    return person


def resolve_person(s: Session, ref: str | int) -> Person:
    """The person a user means, whichever front end it came from.

    * an ``int`` (NumPy integers too) is an id (:func:`organizer.ids.as_id`: a bool, a
      float or a number no row can have is refused), PersonNotFound when nobody has it;
    * a string is a name (:func:`person_by_name`: exact, else the one case-insensitive
      match, after :func:`normalise_name`); only when nobody has that name does a string
      of ASCII digits mean an id ("12" is person 12 unless someone is called "12").

    PersonNotFound says what was looked for."""
    if not isinstance(ref, str):
        return require_person(s, as_id(ref, "person id"))
    person = person_by_name(s, ref)
    if person is not None:
        return person
    text = normalise_name(ref)
    if not _DIGITS.fullmatch(text):
        raise PersonNotFound(f"there is no person named {text!r}")
    # int() refuses thousands of digits; such a "number" names nobody anyway
    return require_person(s, int(text) if len(text) <= _ID_DIGITS else text)


__all__ = ["NAME_MAX", "FaceState", "live", "owned", "unowned", "normalise_name", "clean_name", "faces_text",
           "people_named", "person_by_name", "require_person", "resolve_person"]
