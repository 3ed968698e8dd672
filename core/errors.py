"""Domain exceptions whose messages say what is wrong and what to do."""

from __future__ import annotations


class XmtcError(Exception):
    """Base of every error the tool reports to a user."""


class ImportFailed(XmtcError):
    """A file could not be imported; nothing was written. ``report`` holds the details."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class TaxonomyError(ImportFailed):
    """A taxonomy is structurally invalid (cycle, dangling parent, duplicate id)."""


class AuthError(XmtcError):
    """Sign-in failed or an action is not allowed for this user."""


class PermissionDenied(AuthError):
    """The signed-in user's role does not allow this action."""


class NotFound(XmtcError):
    """A project, label, document, job or model version does not exist."""


class ModelError(XmtcError):
    """A model could not be loaded, trained or used."""


class JobCancelled(XmtcError):
    """Raised inside a job when its cancel was requested."""


class JobLost(XmtcError):
    """Raised inside a job that its worker no longer owns (reaped as orphaned, or handed to another worker): it
    must stop without writing anything more."""


class StorageError(XmtcError):
    """The data folder or the disk refused a write (full, read-only, no permission)."""


def storage_error(exc: OSError, what: str = "the data folder") -> StorageError:
    """A clear message for an operating-system error while writing ``what``."""
    import errno

    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return StorageError(f"The disk is full while writing {what}{where}: free some space, then run it again. "
                            "Nothing half-written was kept.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"Cannot write {what}{where}: {exc.strerror or 'permission denied'}. Make XMTC_DATA_DIR a "
                            "writable folder.")
    return StorageError(f"Could not write {what}{where}: {exc.strerror or exc}.")
