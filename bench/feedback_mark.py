"""What PostgreSQL spends to keep track of which stored results the ML service confirmed: the
candidate designs measured alone, side by side, on the same scratch database in one run.

Each design stores ``--results`` results the way a consumer does (COPY into a temporary table,
one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` per batch of 500, commit), then, per batch, what
a flusher does once the ML service confirmed it: claim the batch's rows by id (``FOR UPDATE SKIP
LOCKED``) and mark them confirmed, commit. PostgreSQL's CPU is the backend's on-CPU time
(``/proc/<pid>/schedstat``, nanoseconds, so a 5 ms statement is not lost between clock ticks),
per result; designs run in turns, ``--rounds`` times, so the machine's load falls on all alike.

  mark_update   the columns on the result row (revision 0006, the statements of its code): an
                UPDATE of ``ml_feedback_submitted``, which is in the unsubmitted partial index's
                predicate, so it is never a HOT update and writes every index of the wide row
  hot_update    the same columns, the partial index dropped and the table at fillfactor 70, so
                the UPDATE can be HOT (the read-back of leftovers would then have no index)
  pending       revision 0007 and this code (``insert_results``, ``claim_ids``, ``mark_processed``):
                the narrow ``feedback_pending``, filled by a statement trigger, rows locked by
                the claim and deleted on confirmation
  pending_explicit  such a table (at 0006, the partial index dropped) filled by a second
                statement of the insert's transaction instead of a trigger
  pending_fk    such a table, filled by a trigger, with a foreign key to ``backtest_results``
  pending_claim_delete  such a table, claimed by deleting the rows (DELETE … RETURNING of the
                SKIP LOCKED rows): no separate mark when all are confirmed

    python bench/feedback_mark.py [--results 20000] [--rounds 3] [--pg-db edgeloop_bench_mark]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic import command  # noqa: E402
from sqlalchemy import MetaData, Table  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from edgeloop.core.events import parse_event  # noqa: E402
from edgeloop.schema.bulk import insert_ignoring_duplicates  # noqa: E402
from edgeloop.schema.db import alembic_config, current_revisions, make_engine, upgrade  # noqa: E402
from edgeloop.schema.repository import claim_ids, insert_results, mark_processed  # noqa: E402
from edgeloop.services.ingest import result_row  # noqa: E402
from tests.support.events import valid_event  # noqa: E402
from tests.support.services import drop_pg_database, recreate_pg_database  # noqa: E402

BATCH = 500
BEFORE = "0006"  # the last revision with ml_feedback_submitted on the result row

PENDING = """
DROP INDEX ix_backtest_results_unsubmitted;
CREATE TABLE bench_pending (result_id bigint PRIMARY KEY{fk}, rejected_batch_id integer);
CREATE FUNCTION bench_pending_fill() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO bench_pending (result_id) SELECT id FROM inserted; RETURN NULL; END $$;
CREATE TRIGGER bench_pending_fill AFTER INSERT ON backtest_results REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION bench_pending_fill();
"""
CLAIM_PENDING = ("SELECT result_id FROM bench_pending WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL "
                 "ORDER BY result_id FOR UPDATE SKIP LOCKED")
MARK_PENDING = "DELETE FROM bench_pending WHERE result_id = ANY(%s)"
CLAIM_ROW = ("SELECT id FROM backtest_results WHERE id = ANY(%s) AND ml_feedback_submitted = false "
             "AND feedback_batch_id IS NULL ORDER BY id FOR UPDATE SKIP LOCKED")
MARK_ROW = "UPDATE backtest_results SET ml_feedback_submitted = true, feedback_batch_id = NULL WHERE id = ANY(%s)"

# revision: the schema a design starts from ("head": this code's, through its own functions;
# else that revision, changed by ``setup`` and driven by the SQL of ``claim`` and ``mark``).
DESIGNS: dict[str, dict[str, Any]] = {
    "mark_update": {"revision": BEFORE, "setup": "", "claim": CLAIM_ROW, "mark": MARK_ROW},
    "hot_update": {"revision": BEFORE, "claim": CLAIM_ROW, "mark": MARK_ROW,
                   "setup": "DROP INDEX ix_backtest_results_unsubmitted; ALTER TABLE backtest_results SET (fillfactor = 70)"},
    "pending": {"revision": "head"},
    "pending_explicit": {
        "revision": BEFORE, "claim": CLAIM_PENDING, "mark": MARK_PENDING,
        "setup": "DROP INDEX ix_backtest_results_unsubmitted;"
                 "CREATE TABLE bench_pending (result_id bigint PRIMARY KEY, rejected_batch_id integer)",
        "after_insert": "INSERT INTO bench_pending (result_id) SELECT unnest(%s::bigint[])"},
    "pending_fk": {"revision": BEFORE, "claim": CLAIM_PENDING, "mark": MARK_PENDING,
                   "setup": PENDING.format(fk=" REFERENCES backtest_results (id) ON DELETE CASCADE")},
    "pending_claim_delete": {
        "revision": BEFORE, "setup": PENDING.format(fk=""), "mark": None,
        "claim": "DELETE FROM bench_pending WHERE result_id IN (SELECT result_id FROM bench_pending "
                 "WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL FOR UPDATE SKIP LOCKED) RETURNING result_id"},
}


def oncpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def rows_for(n: int) -> list[list[dict]]:
    now = datetime.now(timezone.utc)
    rows = [result_row(parse_event(json.dumps(valid_event(i))), f"{i}-0", now) for i in range(n)]
    return [rows[i:i + BATCH] for i in range(0, n, BATCH)]


def updates(engine) -> tuple[int, int]:
    """Updates of backtest_results so far, and how many were HOT (the statistics lag by up to a second)."""
    time.sleep(1.2)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        upd, hot = conn.exec_driver_sql("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                                        "WHERE relname = 'backtest_results'").one()
        return upd, hot


def prepare(url: str, spec: dict[str, Any]) -> None:
    """The design's schema, its tables empty."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_pending; DROP FUNCTION IF EXISTS bench_pending_fill CASCADE")
    at_head = current_revisions(engine) != {BEFORE}
    if not at_head:
        with engine.begin() as conn:  # the index and the fillfactor of 0006, whatever ran before
            conn.exec_driver_sql("DROP INDEX IF EXISTS ix_backtest_results_unsubmitted")
            conn.exec_driver_sql("ALTER TABLE backtest_results RESET (fillfactor)")
            conn.exec_driver_sql("CREATE INDEX ix_backtest_results_unsubmitted ON backtest_results (id) "
                                 "WHERE ml_feedback_submitted = false")
    engine.dispose()
    if spec["revision"] == "head":
        if not at_head:
            upgrade(url)
    elif at_head:
        command.downgrade(alembic_config(url), BEFORE)
    if spec.get("setup"):
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(spec["setup"])
        engine.dispose()
    truncate(url)


def truncate(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE backtest_results, feedback_batches, strategies RESTART IDENTITY CASCADE")
    engine.dispose()


def run(url: str, design: str, batches: list[list[dict]]) -> dict[str, float]:
    spec = DESIGNS[design]
    prepare(url, spec)
    code = spec["revision"] == "head"
    engine = make_engine(url, connect_args={"application_name": f"bench-mark-{design}"})
    before = updates(engine)
    spent = {"insert": 0, "claim": 0, "mark": 0}
    wall = {"insert": 0.0, "claim": 0.0, "mark": 0.0}
    n = 0
    with Session(engine) as session:
        conn = session.connection()
        pid = conn.connection.driver_connection.info.backend_pid
        # At 0006 the model of this code has no ml_feedback_submitted: the table as it is.
        table = None if code else Table("backtest_results", MetaData(), autoload_with=conn)
        session.commit()

        def timed(step: str, fn):
            t, c = time.perf_counter(), oncpu_ns(pid)
            out = fn()
            spent[step] += oncpu_ns(pid) - c
            wall[step] += time.perf_counter() - t
            return out

        def sql(statement: str, ids: list[int]) -> Any:
            return session.connection().exec_driver_sql(statement, (ids,))

        for batch in batches:
            def insert() -> list[int]:
                if code:
                    ids = list(insert_results(session, batch).values())
                else:
                    rows = [{**r, "ml_feedback_submitted": False} for r in batch]
                    ids = [i for _, i in insert_ignoring_duplicates(session.connection(), table, rows,
                                                                    ("backtest_id", "id"))]
                    if spec.get("after_insert"):
                        sql(spec["after_insert"], ids)
                session.commit()
                return sorted(ids)

            ids = timed("insert", insert)
            if code:
                claimed = timed("claim", lambda: claim_ids(session, ids))
            else:
                claimed = timed("claim", lambda: sorted(r[0] for r in sql(spec["claim"], ids)))
            assert claimed == ids, (design, len(claimed), len(ids))
            if code:
                marked = timed("mark", lambda: mark_processed(session, claimed))
                assert marked == len(ids)
            elif spec["mark"]:
                marked = timed("mark", lambda: sql(spec["mark"], claimed).rowcount)
                assert marked == len(ids)
            timed("mark", session.commit)  # the commit ends the claim and the mark's transaction
            n += len(ids)
    after = updates(engine)
    engine.dispose()
    out = {f"{k}_cpu_us": spent[k] / 1000 / n for k in spent}
    out.update({f"{k}_wall_us": wall[k] * 1e6 / n for k in wall})
    updated, hot = after[0] - before[0], after[1] - before[1]
    out["hot_share"] = hot / updated if updated else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-db", default="edgeloop_bench_mark")
    ap.add_argument("--designs", default=",".join(DESIGNS))
    args = ap.parse_args()
    designs = args.designs.split(",")
    url = recreate_pg_database(args.pg_db)
    upgrade(url)
    batches = rows_for(args.results)
    results: dict[str, list[dict[str, float]]] = {d: [] for d in designs}
    try:
        for _ in range(args.rounds):
            for d in designs:
                results[d].append(run(url, d, batches))
    finally:
        drop_pg_database(args.pg_db)
    print(f"{args.results} results, batches of {BATCH}, median of {args.rounds} rounds; µs per result")
    print(f"{'design':22} {'insert':>7} {'claim':>7} {'mark':>7} {'c+m':>7} | wall: {'insert':>7} {'claim':>7} "
          f"{'mark':>7}  hot")
    for d, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{d:22} {med['insert_cpu_us']:7.1f} {med['claim_cpu_us']:7.1f} {med['mark_cpu_us']:7.1f} "
              f"{med['claim_cpu_us'] + med['mark_cpu_us']:7.1f} |       {med['insert_wall_us']:7.1f} "
              f"{med['claim_wall_us']:7.1f} {med['mark_wall_us']:7.1f}  {med['hot_share']:.2f}")


if __name__ == "__main__":
    main()
