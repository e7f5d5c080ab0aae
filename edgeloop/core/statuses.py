"""The status values stored in the tables and carried in messages, defined once.

Each is a ``StrEnum``: a member is the string it stores (``StrategyStatus.ACTIVE == "active"``),
so rows, JSON and protobuf fields hold the same values as plain strings, and a value read back
from the database compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum


class StrategyStatus(StrEnum):
    """``strategies.status`` and ``strategy_rankings.status``: where a strategy is in its lifecycle."""

    CANDIDATE = "candidate"  # generated or added, not yet judged good enough
    ACTIVE = "active"  # predictions are made for it
    INACTIVE = "inactive"  # retired; an operator or a later ranking may activate it again


class EvidenceKind(StrEnum):
    """``strategy_evidence.kind``: which window a verdict about a strategy rested on."""

    SELECTION = "selection"  # the window it was generated and chosen on
    VALIDATION = "validation"  # the later window its activation was decided on
    LIVE = "live"  # newer data it was re-checked on while active


class TrainingStatus(StrEnum):
    """``ml_training_jobs.status``, ``training_triggers.status`` and ``TrainingStatusResponse.status``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# A training job in one of these will not change again.
TRAINING_FINISHED = (TrainingStatus.SUCCEEDED, TrainingStatus.FAILED)


class ModelStatus(StrEnum):
    """``ml_model_versions.status`` and ``ModelVersion.status``: a trained version's fate."""

    SERVING = "serving"  # answers requests (at most one per model and slot)
    CANDIDATE = "candidate"
    REJECTED = "rejected"  # lost to the champion on held-out data
    RETIRED = "retired"  # served once, replaced by a newer version


class DiscoveryRunStatus(StrEnum):
    """``discovery_reports.status``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # at ``failed_step``; a re-run resumes after the last completed step


class DiscoveryStepStatus(StrEnum):
    """``discovery_reports.steps[name]["status"]``."""

    OK = "ok"
    FAILED = "failed"


class FeedbackBatchStatus(StrEnum):
    """``feedback_batches.status``."""

    PENDING = "pending"  # the column's default; the flusher writes a batch only once it is settled
    SUBMITTED = "submitted"  # the ML service confirmed it
    REJECTED = "rejected"  # one result the service refused (INVALID_ARGUMENT), set aside with its error
