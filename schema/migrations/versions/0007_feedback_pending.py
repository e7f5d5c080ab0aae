"""feedback pending: the results the ML service has not confirmed, in a narrow table of their own.

Marking a result confirmed used to update ``backtest_results.ml_feedback_submitted``: the column
is in the predicate of the partial index of unsubmitted results, so the update was never HOT and
wrote a new version of the wide row into every index (15 µs of PostgreSQL per result,
docs/scaling.md). Now a result waits as a row of ``feedback_pending`` (its id, and the batch
that set it aside when the service refused it), written with the result by a trigger and
deleted on confirmation.

Upgrade: every result not confirmed (waiting or rejected) gets its row, with its rejection's
batch; ``ml_feedback_submitted``, ``feedback_batch_id`` and the partial index are dropped. A
confirmed result's ``feedback_batch_id`` (which batch confirmed it; nothing read it) is not
kept. Downgrade: the columns come back, a result is submitted unless it has a row here, a
rejected one gets its batch back, a confirmed one none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FK_RESULT_BATCH = "fk_backtest_results_feedback_batch_id_feedback_batches"
UNSUBMITTED = dict(postgresql_where=sa.text("ml_feedback_submitted = false"),
                   sqlite_where=sa.text("ml_feedback_submitted = 0"))

# One statement per insert, delete or TRUNCATE on PostgreSQL (transition tables: no per-row
# trigger call); SQLite has only row triggers, and no TRUNCATE. The delete and TRUNCATE triggers
# keep ids of results that are gone out of the table, where a reused id (SQLite reuses the
# highest rowid; ``TRUNCATE … RESTART IDENTITY``) would make its new result's insert fail.
POSTGRESQL_TRIGGERS = [
    """CREATE FUNCTION feedback_pending_fill() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN INSERT INTO feedback_pending (result_id) SELECT id FROM inserted; RETURN NULL; END $$""",
    """CREATE TRIGGER feedback_pending_fill AFTER INSERT ON backtest_results REFERENCING NEW TABLE AS inserted
       FOR EACH STATEMENT EXECUTE FUNCTION feedback_pending_fill()""",
    """CREATE FUNCTION feedback_pending_drop() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN DELETE FROM feedback_pending p USING deleted d WHERE p.result_id = d.id; RETURN NULL; END $$""",
    """CREATE TRIGGER feedback_pending_drop AFTER DELETE ON backtest_results REFERENCING OLD TABLE AS deleted
       FOR EACH STATEMENT EXECUTE FUNCTION feedback_pending_drop()""",
    # DELETE, not TRUNCATE: the TRUNCATE that fired this may be truncating feedback_pending too.
    """CREATE FUNCTION feedback_pending_clear() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN DELETE FROM feedback_pending; RETURN NULL; END $$""",
    """CREATE TRIGGER feedback_pending_clear AFTER TRUNCATE ON backtest_results
       FOR EACH STATEMENT EXECUTE FUNCTION feedback_pending_clear()""",
]
SQLITE_TRIGGERS = [
    """CREATE TRIGGER feedback_pending_fill AFTER INSERT ON backtest_results
       BEGIN INSERT INTO feedback_pending (result_id) VALUES (NEW.id); END""",
    """CREATE TRIGGER feedback_pending_drop AFTER DELETE ON backtest_results
       BEGIN DELETE FROM feedback_pending WHERE result_id = OLD.id; END""",
]


def create_triggers() -> None:
    """The triggers that keep ``feedback_pending`` in step with ``backtest_results``. On SQLite a
    later migration that rebuilds ``backtest_results`` in batch mode drops them: it must call
    this again."""
    for statement in POSTGRESQL_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def drop_triggers() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in ("feedback_pending_fill", "feedback_pending_drop", "feedback_pending_clear"):
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON backtest_results")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _tables() -> tuple[sa.TableClause, sa.TableClause]:
    results = sa.table("backtest_results", sa.column("id", sa.Integer()),
                       sa.column("ml_feedback_submitted", sa.Boolean()), sa.column("feedback_batch_id", sa.Integer()))
    pending = sa.table("feedback_pending", sa.column("result_id", sa.Integer()),
                       sa.column("rejected_batch_id", sa.Integer()))
    return results, pending


def upgrade() -> None:
    op.create_table(
        "feedback_pending",
        sa.Column("result_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False,
                  nullable=False),
        sa.Column("rejected_batch_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["rejected_batch_id"], ["feedback_batches.id"],
                                name=op.f("fk_feedback_pending_rejected_batch_id_feedback_batches")),
        sa.PrimaryKeyConstraint("result_id", name=op.f("pk_feedback_pending")),
    )
    results, pending = _tables()
    op.execute(pending.insert().from_select(
        ["result_id", "rejected_batch_id"],
        sa.select(results.c.id, results.c.feedback_batch_id).where(results.c.ml_feedback_submitted == sa.false())))
    with op.batch_alter_table("backtest_results", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_results_unsubmitted", **UNSUBMITTED)
        batch_op.drop_constraint(FK_RESULT_BATCH, type_="foreignkey")
        batch_op.drop_column("feedback_batch_id")
        batch_op.drop_column("ml_feedback_submitted")
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    # Submitted unless waiting: the default fills every row at once (no rewrite of the table on
    # PostgreSQL), then only the rows still waiting are updated.
    with op.batch_alter_table("backtest_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ml_feedback_submitted", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column("feedback_batch_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(FK_RESULT_BATCH, "feedback_batches", ["feedback_batch_id"], ["id"])
    results, pending = _tables()
    waiting = sa.select(pending.c.result_id).where(pending.c.result_id == results.c.id)
    op.execute(results.update().where(waiting.exists()).values(
        ml_feedback_submitted=False,
        feedback_batch_id=waiting.with_only_columns(pending.c.rejected_batch_id).scalar_subquery()))
    with op.batch_alter_table("backtest_results", schema=None) as batch_op:
        batch_op.alter_column("ml_feedback_submitted", server_default=None, existing_type=sa.Boolean(),
                              existing_nullable=False)
        batch_op.create_index("ix_backtest_results_unsubmitted", ["id"], unique=False, **UNSUBMITTED)
    op.drop_table("feedback_pending")
