"""Every exception damfleet raises on purpose, and what a retry can do about each.

Media, storage, model and delivery functions know nothing of Temporal; they raise these.
The activity wrappers translate them with :func:`activities.common.to_application_error`,
so the retry decision is made once, here, by the exception's class. The whole tree lives
in this module (other modules re-export the classes they raise, under the same names)::

    DamfleetError
    ├── PermanentError              retrying cannot help: fails on attempt 1
    │   ├── BadInputError           the media or request itself is wrong
    │   │   ├── SourceNotFoundError
    │   │   ├── SourceRefusedError      outside DAMFLEET_INGEST_SOURCE_ROOTS, or an unusable path
    │   │   ├── EmptySourceError
    │   │   ├── ChecksumMismatchError
    │   │   ├── UnsupportedMediaError
    │   │   │   └── MissingStreamError      a rendition needs a stream the file lacks
    │   │   ├── CorruptMediaError
    │   │   │   └── TruncatedMediaError     decoding stopped well short of the declared duration
    │   │   ├── UnsafeMediaError            references other files/URLs, decompression bomb
    │   │   │   └── ImageTooLargeError
    │   │   └── NoAudioStreamError          nothing to transcribe
    │   ├── ConfigurationError      a setting, model file or target definition is unusable
    │   │   ├── ScratchTooSmallError        the scratch disk could never hold this source
    │   │   ├── ToolResourceLimitError      a tool cannot run within its memory limit
    │   │   └── OutboundBlockedError        a target points into a network damfleet must not reach
    │   ├── TargetRejectedError     a delivery target refused the request (4xx other than 408/425/429)
    │   └── IncompleteTranscriptError   the transcript covers too little of the speech, even re-decoded
    ├── Cancelled                   the caller asked the work to stop (not an input problem)
    └── TransientError              retrying later may help
        ├── UnavailableError        "the world is down": retried until the queue's retry window closes
        │   ├── StorageUnavailableError     the object store or shared volume cannot be reached
        │   ├── InferenceUnavailableError   the gRPC inference service cannot be reached
        │   ├── TargetUnavailableError      a delivery target is down (carries retry_after_seconds)
        │   └── ScratchSpaceError           the scratch disk is full right now
        └── ToolFailureError        a tool misbehaved on this input: a few attempts, then the run fails
            ├── ToolStalledError
            ├── ToolTimeoutError
            └── ToolCrashedError    killed by a signal (OOM kill, memory limit)

Three kinds of failure, three budgets:

- ``retryable = False``: the first failure is final (bad input, bad configuration).
- ``max_attempts = None``: no attempt budget; the activity's schedule-to-close timeout
  (hours, one setting per queue in :mod:`damfleet.policies`) is the only bound. Outages
  of storage, the inference service or a partner endpoint are waited out, never reported
  as bad input.
- ``max_attempts = N``: the error becomes final on attempt N. Temporal counts every
  attempt, worker deaths (heartbeat or start-to-close timeouts) included, so the policies
  themselves set no attempt limit: a killed worker never uses up an asset's budget, and
  only errors with their own ``max_attempts`` end a run early.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "PERMANENT_ERROR_TYPES",
    "UNEXPECTED_ERROR_MAX_ATTEMPTS",
    "BadInputError",
    "Cancelled",
    "ChecksumMismatchError",
    "ConfigurationError",
    "CorruptMediaError",
    "DamfleetError",
    "EmptySourceError",
    "ImageTooLargeError",
    "IncompleteTranscriptError",
    "InferenceUnavailableError",
    "MissingStreamError",
    "NoAudioStreamError",
    "OutboundBlockedError",
    "PermanentError",
    "ScratchSpaceError",
    "ScratchTooSmallError",
    "SourceNotFoundError",
    "SourceRefusedError",
    "StorageUnavailableError",
    "TargetRejectedError",
    "TargetUnavailableError",
    "ToolCrashedError",
    "ToolFailureError",
    "ToolResourceLimitError",
    "ToolStalledError",
    "ToolTimeoutError",
    "TransientError",
    "TruncatedMediaError",
    "UnavailableError",
    "UnsafeMediaError",
    "UnsupportedMediaError",
    "all_error_classes",
]

#: Attempts allowed for an exception damfleet did not anticipate (a bug, an unmapped library
#: error): enough to ride out a flake, not so many that a bug retries for hours.
UNEXPECTED_ERROR_MAX_ATTEMPTS = 5


class DamfleetError(Exception):
    """Base of every error damfleet raises on purpose."""

    #: The Temporal ApplicationError type name; listed in the policies' non-retryable types
    #: for permanent errors.
    error_type: str = "DamfleetError"
    #: False: the first failure is final.
    retryable: bool = True
    #: The attempt on which a retryable error becomes final; None: bounded only by the
    #: queue's retry window (schedule-to-close).
    max_attempts: int | None = UNEXPECTED_ERROR_MAX_ATTEMPTS
    #: Short words for "waiting: <reason> (attempt N)" in ``damfleet status``.
    waiting_reason: str = "retrying after an error"


class PermanentError(DamfleetError):
    """Retrying cannot help; the run should fail with this message."""

    error_type = "PermanentError"
    retryable = False
    max_attempts = 1


class BadInputError(PermanentError):
    error_type = "BadInput"


class SourceNotFoundError(BadInputError):
    error_type = "SourceNotFound"


class SourceRefusedError(BadInputError):
    """The source lies outside the configured roots, or its path cannot be used safely."""


class EmptySourceError(BadInputError):
    error_type = "EmptySource"


class ChecksumMismatchError(BadInputError):
    error_type = "ChecksumMismatch"


class UnsupportedMediaError(BadInputError):
    error_type = "UnsupportedMedia"


class MissingStreamError(UnsupportedMediaError):
    """The requested rendition needs a stream (video or audio frames) the file does not have."""


class CorruptMediaError(BadInputError):
    error_type = "CorruptMedia"


class TruncatedMediaError(CorruptMediaError):
    """The container promises more media than the file delivers."""


class UnsafeMediaError(BadInputError):
    error_type = "UnsafeMedia"


class ImageTooLargeError(UnsafeMediaError):
    """The image's pixel count exceeds ``DAMFLEET_TRANSCODE_MAX_IMAGE_PIXELS``."""


class NoAudioStreamError(BadInputError):
    """The media has no audio stream to transcribe."""

    error_type = "NoAudioStream"


class ConfigurationError(PermanentError):
    error_type = "ConfigurationError"


class ScratchTooSmallError(ConfigurationError):
    """The scratch disk could never hold this source: more retries on this worker cannot help."""


class ToolResourceLimitError(ConfigurationError):
    """A tool could not start or finish within the configured memory limit.

    The address-space limit is deterministic, so retrying with the same setting cannot
    help; the message names the setting to raise.
    """


class OutboundBlockedError(ConfigurationError):
    """A target URL or a redirect points into a network damfleet must not reach."""

    error_type = "OutboundBlocked"


class TargetRejectedError(PermanentError):
    error_type = "TargetRejected"


class IncompleteTranscriptError(PermanentError):
    """The transcript's words cover too little of the speech the VAD found, even after re-decoding.

    Decoding the same audio again on the same machine gives the same tokens, so retrying
    cannot help; the asset stays usable and the run ends COMPLETED_WITH_ERRORS.
    """

    error_type = "IncompleteTranscript"


class Cancelled(DamfleetError):
    """The caller asked the work to stop (activity cancelled, worker shutting down).

    Retryable with no budget: a cancelled run never looks at the result, and a worker
    shutdown must hand the task to another worker, not fail the asset.
    """

    error_type = "Cancelled"
    max_attempts = None
    waiting_reason = "cancelled"


class TransientError(DamfleetError):
    """Worth retrying with backoff; ten attempts unless a subclass says otherwise (an
    outage is an :class:`UnavailableError`, with no attempt budget at all)."""

    error_type = "Transient"
    retryable = True
    max_attempts = 10

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class UnavailableError(TransientError):
    """Infrastructure the work depends on is down; the input is fine. No attempt budget:
    retried with capped backoff until the queue's retry window (schedule-to-close) closes."""

    error_type = "Unavailable"
    max_attempts = None
    waiting_reason = "infrastructure unavailable"


class StorageUnavailableError(UnavailableError):
    error_type = "StorageUnavailable"
    waiting_reason = "storage unreachable"


class InferenceUnavailableError(UnavailableError):
    error_type = "InferenceUnavailable"
    waiting_reason = "inference service unreachable"


class TargetUnavailableError(UnavailableError):
    error_type = "TargetUnavailable"
    waiting_reason = "delivery target unavailable"


class ScratchSpaceError(UnavailableError):
    """Scratch disk too small for this source now; retried, possibly on a worker with more room."""

    error_type = "ScratchSpace"
    waiting_reason = "scratch disk full"


class ToolFailureError(TransientError):
    """A media tool failed in a way that may not repeat; after a few attempts it is the input."""

    error_type = "ToolFailure"
    max_attempts = 4
    waiting_reason = "tool failed"


class ToolStalledError(ToolFailureError):
    error_type = "ToolStalled"
    waiting_reason = "tool stalled"


class ToolTimeoutError(ToolFailureError):
    error_type = "ToolTimeout"
    waiting_reason = "tool timed out"


class ToolCrashedError(ToolFailureError):
    """A tool was killed by a signal (for example its memory limit); worth a few more tries."""

    error_type = "ToolCrashed"
    waiting_reason = "tool crashed"


def all_error_classes(root: type[DamfleetError] = DamfleetError) -> Iterator[type[DamfleetError]]:
    """``root`` and every subclass below it, depth first."""
    yield root
    for sub in root.__subclasses__():
        yield from all_error_classes(sub)


#: Every permanent error type name, for RetryPolicy.non_retryable_error_types; derived
#: from the tree, so a new permanent class cannot be forgotten here.
PERMANENT_ERROR_TYPES: tuple[str, ...] = tuple(
    sorted({cls.error_type for cls in all_error_classes() if not cls.retryable})
)
