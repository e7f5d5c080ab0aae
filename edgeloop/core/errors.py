"""The one exception hierarchy of edgeloop.

Two branches, after dramatiq: a *transient* error is worth retrying (with bounded
backoff) because the world may change — a service is down, a lock is held; a *permanent*
error will fail the same way every time — bad input, a missing migration — so it is
reported (or dead-lettered with its reason) instead of retried.
"""

from __future__ import annotations


class EdgeloopError(Exception):
    """Root of every error edgeloop raises on purpose.

    ``code`` is the gRPC status code's name on an error the ML client raised for a failed call
    (``edgeloop.core.error_codes`` maps a status back to its class), None on one raised here."""

    code: str | None = None


class TransientError(EdgeloopError):
    """Retrying later may succeed."""


class PermanentError(EdgeloopError):
    """Retrying cannot succeed; report it."""


class ConfigurationError(PermanentError):
    """A setting is missing or invalid."""


class InvalidEvent(PermanentError):
    """An event failed parsing or validation; ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidStrategy(PermanentError):
    """A strategy's parameters are invalid."""


class LookAheadError(PermanentError):
    """Backtest input carries information from after the events it is used on (a leak)."""


class DatabaseNotMigrated(PermanentError):
    """The database schema is older than this code; run `edgeloop db upgrade`."""


class ServiceUnavailable(TransientError):
    """A dependency (Redis, the database, the ML service) cannot be reached right now."""


class MLServiceError(EdgeloopError):
    """The ML service answered with a status that has no error class of its own in
    ``edgeloop.core.error_codes`` (``UNAUTHENTICATED``, ``PERMISSION_DENIED``, ``INTERNAL`` …);
    ``code`` is the status code's name."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


class MLMessageTooLarge(MLServiceError):
    """A request or reply exceeded a gRPC message size limit (RESOURCE_EXHAUSTED "larger than
    max"): a smaller request may go through."""

    def __init__(self, message: str, code: str = "RESOURCE_EXHAUSTED") -> None:
        super().__init__(message, code)


class MLServiceUnavailable(ServiceUnavailable):
    """The ML service cannot be reached, or the circuit breaker is open; ``code`` as above."""

    def __init__(self, message: str, code: str = "UNAVAILABLE") -> None:
        super().__init__(message)
        self.code = code


class MLRateLimited(MLServiceUnavailable):
    """The ML service refused the call under this client's rate limit (RESOURCE_EXHAUSTED with
    ``retry-after-ms``); ``retry_after_s`` says when to try again. The client has already waited
    and retried as long as its deadline allowed. Proves the service is up: never opens a breaker."""

    def __init__(self, message: str, retry_after_s: float, code: str = "RESOURCE_EXHAUSTED") -> None:
        super().__init__(message, code)
        self.retry_after_s = retry_after_s


class FeedbackDeferred(TransientError):
    """The ML service did not take feedback for a reason that is not the data (down, a token
    mismatch, a deployment, a server fault): nothing was set aside, retry later. ``code`` is
    the gRPC status code's name."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class ModelArtifactUnreadable(PermanentError):
    """A stored model version's artifact cannot be read by this code (empty, truncated, corrupt,
    made for other features): it will not read better next time. Roll the slot back to another
    version (``rollback``) or train a new one."""


class InvalidRequest(PermanentError):
    """A request to the ML service is malformed or out of bounds (gRPC INVALID_ARGUMENT, HTTP 400)."""


class NotFound(PermanentError):
    """A named event, backtest, model version or job does not exist (gRPC NOT_FOUND, HTTP 404)."""


class ModelNotTrained(PermanentError):
    """No model version may answer yet: the strategy model before its first training, or no
    outcome model trained before the event asked about (gRPC FAILED_PRECONDITION, HTTP 409).
    Train, then ask again."""
