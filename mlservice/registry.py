"""The model registry: every trained version, which one serves, champion/challenger, rollback.

A version is recorded whatever becomes of it, with its training window, sample count,
held-out metrics and time. Versions compete per *slot*: an outcome version's slot is the
season it was held out on (it serves events from its ``train_end`` on); the strategy model
has one slot. A challenger replaces the serving champion of its slot only if it is at least
as good on held-out data both can be judged on, and that data is not the slot's own (the
trainers compute both numbers on the same data; for an outcome season, the seasons before
it); otherwise it is kept as ``rejected``. A replaced champion becomes ``retired`` and can be
put back with ``rollback``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer, sessionmaker

from edgeloop.core.errors import InvalidRequest, NotFound
from edgeloop.core.statuses import ModelStatus
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.base import utcnow
from edgeloop.schema.mlstore import ModelVersion

MODEL_NAMES = ("outcome", "strategy")


def new_version_id(model_name: str, slot: str) -> str:
    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
    return f"{model_name}-{slot}-{stamp}-{uuid.uuid4().hex[:6]}" if slot else f"{model_name}-{stamp}-{uuid.uuid4().hex[:6]}"


def as_instant(d: date | datetime | None) -> datetime | None:
    if d is None or isinstance(d, datetime):
        return d
    return datetime.combine(d, time(0), tzinfo=timezone.utc)


@dataclass(frozen=True)
class Candidate:
    """A freshly trained version, before the registry decides its status."""

    model_name: str
    slot: str
    train_start: date | datetime | None
    train_end: date | datetime | None
    sample_count: int
    metrics: dict[str, float]
    config: dict[str, Any]
    artifact: bytes
    job_id: str | None = None


def check_model_name(name: str, allow_empty: bool = False) -> None:
    if (name or not allow_empty) and name not in MODEL_NAMES:
        raise InvalidRequest(f"unknown model_name {name!r}; known: {', '.join(MODEL_NAMES)}")


def serving_versions(sessions: sessionmaker[Session], model_name: str) -> list[ModelVersion]:
    with sessions() as s:
        return list(s.scalars(
            select(ModelVersion).where(ModelVersion.model_name == model_name, ModelVersion.status == ModelStatus.SERVING)
            .order_by(ModelVersion.train_end, ModelVersion.id)))


def serving_version_ids(sessions: sessionmaker[Session], model_name: str) -> tuple[str, ...]:
    """The serving versions' ids in ``serving_versions`` order, without loading artifacts."""
    with sessions() as s:
        return tuple(s.scalars(
            select(ModelVersion.version).where(ModelVersion.model_name == model_name, ModelVersion.status == ModelStatus.SERVING)
            .order_by(ModelVersion.train_end, ModelVersion.id)))


def serving_in_slot(session: Session, model_name: str, slot: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.model_name == model_name, ModelVersion.slot == slot,
                                   ModelVersion.status == ModelStatus.SERVING).with_for_update()
    ).first()


def serving_rows(session: Session, model_name: str) -> list[ModelVersion]:
    """Every serving version of ``model_name``, locked until the session's transaction ends."""
    return list(session.scalars(
        select(ModelVersion).where(ModelVersion.model_name == model_name, ModelVersion.status == ModelStatus.SERVING)
        .order_by(ModelVersion.id).with_for_update()))


def load_artifact(sessions: sessionmaker[Session], version: str) -> bytes:
    with sessions() as s:
        data = s.scalars(select(ModelVersion.artifact).where(ModelVersion.version == version)).first()
    if data is None:
        raise NotFound(f"no model version {version!r}")
    return data


def get_version(sessions: sessionmaker[Session], version: str) -> ModelVersion:
    """A version's registry row, without its artifact (``load_artifact``)."""
    with sessions() as s:
        row = s.scalars(select(ModelVersion).where(ModelVersion.version == version)
                        .options(defer(ModelVersion.artifact, raiseload=True))).first()
    if row is None:
        raise NotFound(f"no model version {version!r}")
    return row


def record(session: Session, cand: Candidate, status: str, note: str = "") -> ModelVersion:
    """Insert ``cand`` with ``status``; a new serving version retires its slot's champion."""
    if status == ModelStatus.SERVING:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.model_name == cand.model_name, ModelVersion.slot == cand.slot,
                   ModelVersion.status == ModelStatus.SERVING)
            .values(status=ModelStatus.RETIRED))
    row = ModelVersion(
        model_name=cand.model_name, version=new_version_id(cand.model_name, cand.slot), status=status,
        slot=cand.slot, train_start=as_instant(cand.train_start), train_end=as_instant(cand.train_end),
        sample_count=cand.sample_count, metrics=cand.metrics, config=cand.config, artifact=cand.artifact,
        note=note, job_id=cand.job_id)
    session.add(row)
    session.flush()
    return row


def rollback(sessions: sessionmaker[Session], version: str) -> ModelVersion:
    """Make ``version`` serve its slot again; the slot's current champion is retired."""
    with sessions.begin() as s:
        row = s.scalars(select(ModelVersion).where(ModelVersion.version == version).with_for_update()).first()
        if row is None:
            raise NotFound(f"no model version {version!r}")
        if row.status == ModelStatus.SERVING:
            return row
        s.execute(update(ModelVersion)
                  .where(ModelVersion.model_name == row.model_name, ModelVersion.slot == row.slot,
                         ModelVersion.status == ModelStatus.SERVING)
                  .values(status=ModelStatus.RETIRED))
        row.status = ModelStatus.SERVING
        row.note = (row.note + "; " if row.note else "") + f"rolled back to at {utcnow().isoformat()}"
        return row


def list_versions(sessions: sessionmaker[Session], model_name: str = "") -> list[ModelVersion]:
    with sessions() as s:
        q = (select(ModelVersion).options(defer(ModelVersion.artifact, raiseload=True))
             .order_by(ModelVersion.model_name, ModelVersion.slot, ModelVersion.id))
        if model_name:
            q = q.where(ModelVersion.model_name == model_name)
        return list(s.scalars(q))


def to_proto(row: ModelVersion) -> pb.ModelVersion:
    return pb.ModelVersion(
        model_name=row.model_name, version=row.version, status=row.status,
        train_start=row.train_start.isoformat() if row.train_start else "",
        train_end=row.train_end.isoformat() if row.train_end else "",
        sample_count=row.sample_count,
        metrics={k: float(v) for k, v in (row.metrics or {}).items() if isinstance(v, (int, float))},
        created_at=row.created_at.isoformat() if row.created_at else "",
    )
