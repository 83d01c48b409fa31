"""The error tree. A job fails now on a PermanentError and is retried with backoff on a TransientError."""

from __future__ import annotations


class MediajobsError(Exception):
    """Root of every error mediajobs raises on purpose."""

    code = "internal"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class PermanentError(MediajobsError):
    """The job cannot succeed by trying again; it fails now."""


class TransientError(MediajobsError):
    """The job may succeed later; it is retried with exponential backoff up to its max attempts."""

    code = "transient"


class InvalidParams(PermanentError):
    """The job's parameters are not valid for its kind."""

    code = "invalid_params"


class InvalidField(InvalidParams):
    """One request field has a value the target does not allow (a time past the end, a missing rung)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class UnsupportedMedia(PermanentError):
    """The input is not a video or audio file that can be processed."""

    code = "unsupported_media"


class TooLarge(PermanentError):
    """The input is larger than the configured limit."""

    code = "too_large"


class ForbiddenAddress(PermanentError):
    """The URL points at an address imports may not reach."""

    code = "forbidden_address"


class SourceUnreachable(PermanentError):
    """The source could not be fetched (DNS failure, refused connection, HTTP error)."""

    code = "source_unreachable"


class SourceTemporarilyUnreachable(TransientError):
    """The source failed in a way that may pass (timeout, 5xx); worth another attempt."""

    code = "source_unreachable"


class ProcessFailed(PermanentError):
    """A subprocess exited with an error."""

    code = "process_failed"


class JobCancelled(MediajobsError):
    """The job was cancelled and its work has stopped."""

    code = "cancelled"


class JobTimeout(MediajobsError):
    """The job ran past its time limit and its work was stopped."""

    code = "timeout"


class NotFound(MediajobsError):
    """No such record."""

    code = "not_found"


class Conflict(MediajobsError):
    """The record is not in a state that allows this operation."""

    code = "conflict"


class InvalidUrl(PermanentError):
    """The URL is not an http(s) URL with a host."""

    code = "invalid_url"


class ResourceLimit(PermanentError):
    """A child process was stopped by its memory or CPU-time limit."""

    code = "resource_limit"
