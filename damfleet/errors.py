"""The exceptions plain damfleet functions raise, and what a retry can do about them.

Media, storage, model and delivery functions know nothing of Temporal; they raise these.
The activity wrappers translate them with :func:`activities.common.to_application_error`,
so the retry decision is made once, here, by the exception's class::

    DamfleetError
    ├── PermanentError          retrying cannot help: bad input, bad configuration
    │   ├── BadInputError       the media or request itself is wrong
    │   │   ├── SourceNotFoundError
    │   │   ├── EmptySourceError
    │   │   ├── ChecksumMismatchError
    │   │   ├── UnsupportedMediaError
    │   │   ├── CorruptMediaError
    │   │   └── UnsafeMediaError    (references other files/URLs, decompression bomb)
    │   ├── ConfigurationError  a setting, model file or target definition is unusable
    │   └── TargetRejectedError a delivery target refused the request (4xx other than 408/425/429)
    └── TransientError          retrying later may help: network, 5xx, a stalled tool, disk full
        ├── ToolStalledError
        └── TargetUnavailableError  (carries retry_after_seconds when the target said so)
"""

from __future__ import annotations

__all__ = [
    "BadInputError",
    "ChecksumMismatchError",
    "ConfigurationError",
    "CorruptMediaError",
    "DamfleetError",
    "EmptySourceError",
    "PermanentError",
    "SourceNotFoundError",
    "TargetRejectedError",
    "TargetUnavailableError",
    "ToolStalledError",
    "TransientError",
    "UnsafeMediaError",
    "UnsupportedMediaError",
]


class DamfleetError(Exception):
    """Base of every error damfleet raises on purpose."""

    #: The Temporal ApplicationError type name; listed in the policies' non-retryable types
    #: for permanent errors.
    error_type: str = "DamfleetError"
    retryable: bool = True


class PermanentError(DamfleetError):
    """Retrying cannot help; the run should fail with this message."""

    error_type = "PermanentError"
    retryable = False


class BadInputError(PermanentError):
    error_type = "BadInput"


class SourceNotFoundError(BadInputError):
    error_type = "SourceNotFound"


class EmptySourceError(BadInputError):
    error_type = "EmptySource"


class ChecksumMismatchError(BadInputError):
    error_type = "ChecksumMismatch"


class UnsupportedMediaError(BadInputError):
    error_type = "UnsupportedMedia"


class CorruptMediaError(BadInputError):
    error_type = "CorruptMedia"


class UnsafeMediaError(BadInputError):
    error_type = "UnsafeMedia"


class ConfigurationError(PermanentError):
    error_type = "ConfigurationError"


class TargetRejectedError(PermanentError):
    error_type = "TargetRejected"


class IncompleteTranscriptError(PermanentError):
    """The transcript's words cover too little of the speech the VAD found, even after re-decoding.

    Decoding the same audio again on the same machine gives the same tokens, so retrying
    cannot help; the asset stays usable and the run ends COMPLETED_WITH_ERRORS.
    """

    error_type = "IncompleteTranscript"


class TransientError(DamfleetError):
    """Worth retrying with backoff."""

    error_type = "Transient"
    retryable = True

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ToolStalledError(TransientError):
    error_type = "ToolStalled"


class TargetUnavailableError(TransientError):
    error_type = "TargetUnavailable"


#: Every permanent error type name, for RetryPolicy.non_retryable_error_types.
PERMANENT_ERROR_TYPES: tuple[str, ...] = tuple(
    cls.error_type
    for cls in (
        PermanentError,
        BadInputError,
        SourceNotFoundError,
        EmptySourceError,
        ChecksumMismatchError,
        UnsupportedMediaError,
        CorruptMediaError,
        UnsafeMediaError,
        ConfigurationError,
        TargetRejectedError,
        IncompleteTranscriptError,
    )
)
