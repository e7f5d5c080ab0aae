"""ml service: The ML service's own tables: feedback samples, model registry, training jobs (ML service issue).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ml_feedback_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("backtest_id", sa.String(length=128), nullable=False),
        sa.Column("strategy_id", sa.String(length=128), nullable=False),
        sa.Column("strategy_name", sa.String(length=256), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("backtest_score", sa.Float(), nullable=False),
        sa.Column("params_key", sa.String(length=512), nullable=False),
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_feedback_samples")),
        sa.UniqueConstraint("backtest_id", name=op.f("uq_ml_feedback_samples_backtest_id")),
    )
    op.create_index(op.f("ix_ml_feedback_samples_strategy_id"), "ml_feedback_samples", ["strategy_id"])
    op.create_index(op.f("ix_ml_feedback_samples_params_key"), "ml_feedback_samples", ["params_key"])
    op.create_index(op.f("ix_ml_feedback_samples_received_at"), "ml_feedback_samples", ["received_at"])
    op.create_index(op.f("ix_ml_feedback_samples_backtest_score"), "ml_feedback_samples", ["backtest_score"])

    op.create_table(
        "ml_model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.String(length=32), nullable=False),
        sa.Column("train_start", TS, nullable=True),
        sa.Column("train_end", TS, nullable=True),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_model_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_ml_model_versions_version")),
    )
    op.create_index("ix_ml_model_versions_name_status", "ml_model_versions", ["model_name", "status"])
    op.create_index("uq_ml_model_versions_serving_slot", "ml_model_versions", ["model_name", "slot"], unique=True,
                    postgresql_where=sa.text("status = 'serving'"), sqlite_where=sa.text("status = 'serving'"))

    op.create_table(
        "ml_training_jobs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=32), nullable=False),
        sa.Column("force", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("model_versions", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_ml_training_jobs")),
    )
    op.create_index(op.f("ix_ml_training_jobs_status"), "ml_training_jobs", ["status"])


def downgrade() -> None:
    op.drop_table("ml_training_jobs")
    op.drop_index("uq_ml_model_versions_serving_slot", table_name="ml_model_versions")
    op.drop_index("ix_ml_model_versions_name_status", table_name="ml_model_versions")
    op.drop_table("ml_model_versions")
    op.drop_table("ml_feedback_samples")
