"""Specific exceptions of the core. The CLI prints their message in one line; the
dashboard shows it in an alert. Each carries a message meant for the user."""
from __future__ import annotations


class OrganizerError(Exception):
    """Base of every error the user should see as a one-line message."""


class LibraryError(OrganizerError):
    """The database cannot be opened, created or written."""


class PhotoRootError(OrganizerError):
    """The photo folder is missing, not a folder, or unreadable."""


class UnreadableImage(OrganizerError):
    """A file could not be decoded as an image (the reason says why)."""


class NotFound(OrganizerError):
    """An id or name the user gave does not exist."""


class PersonNotFound(NotFound):
    pass


class FaceNotFound(NotFound):
    pass


class ClusterNotFound(NotFound):
    pass


class InvalidRequest(OrganizerError):
    """A request that cannot be carried out as given (empty name, merging a person into itself...)."""


class SettingError(OrganizerError):
    """A setting (environment variable) has a value it does not take; the message names
    the variable and what is allowed."""
