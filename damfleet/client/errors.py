"""The client's own errors: a control request the server (or the run) refused.

They are not :class:`damfleet.errors.DamfleetError`: those travel inside activities and
carry a retry policy; these are raised to the caller of the SDK and never retried.
"""

from __future__ import annotations

__all__ = ["DamfleetClientError", "JobControlError", "JobNotFoundError"]


class DamfleetClientError(Exception):
    """A control request could not be carried out; the message says why."""


class JobNotFoundError(DamfleetClientError, LookupError):
    """No workflow with this id exists in the namespace."""


class JobControlError(DamfleetClientError):
    """The run exists but cannot do what was asked (for example, it already finished)."""
