"""Errors that reach a user: each carries a message meant to be read by a person."""


class QabotError(Exception):
    """Base for failures we explain to the user instead of showing a traceback."""


class IndexNotReady(QabotError):
    """The index is missing, corrupt, or was built with another model: rebuild it."""


class CorpusNotFound(QabotError, FileNotFoundError):
    """The corpus folder setting names no folder (missing, or a file)."""


class ModelUnavailable(QabotError):
    """The embedding model cannot be loaded (not prepared, or not reachable offline)."""
