"""What PostgreSQL spends to keep track of which stored results the ML service confirmed: the
candidate designs measured alone, side by side, on the same scratch database in one run.

Each design stores ``--results`` results the way a consumer does (COPY into a temporary table,
one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` per batch of 500, commit), then, per batch, what
a flusher does once the ML service confirmed it: claim the batch's rows by id (``FOR UPDATE SKIP
LOCKED``) and mark them confirmed, commit. PostgreSQL's CPU is the backend's on-CPU time
(``/proc/<pid>/schedstat``, nanoseconds, so a 5 ms statement is not lost between clock ticks),
per result; designs run in turns, ``--rounds`` times, so the machine's load falls on all alike.

  mark_update   the columns on the row (before revision 0007): an UPDATE of
                ``ml_feedback_submitted``, which is in the unsubmitted partial index's predicate,
                so it is never a HOT update and writes every index of the wide row
  hot_update    the same columns, the partial index dropped and the table at fillfactor 70, so
                the UPDATE can be HOT (the read-back of leftovers would then have no index)
  pending_table a narrow ``feedback_pending`` table of unconfirmed row ids, filled by a statement
                trigger on the insert, rows locked by the claim and deleted on confirmation
                (revision 0007)
  pending_explicit  the same table filled by a second statement of the insert's transaction
  pending_fk    the same as pending_table with a foreign key to ``backtest_results`` (a check per row)
  pending_claim_delete  the same table, claimed by deleting the rows (DELETE … RETURNING of the
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeloop.core.events import parse_event  # noqa: E402
from edgeloop.schema.db import make_engine, upgrade  # noqa: E402
from edgeloop.schema.repository import insert_results  # noqa: E402
from edgeloop.services.ingest import result_row  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from tests.support.events import valid_event  # noqa: E402
from tests.support.services import drop_pg_database, recreate_pg_database  # noqa: E402

BATCH = 500

PENDING = """
CREATE TABLE bench_pending (result_id bigint PRIMARY KEY{fk}, rejected_batch_id integer{rejfk});
CREATE FUNCTION bench_pending_fill() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO bench_pending (result_id) SELECT id FROM inserted{conflict}; RETURN NULL; END $$;
CREATE TRIGGER bench_pending_fill AFTER INSERT ON backtest_results REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION bench_pending_fill();
"""

DESIGNS = {
    "mark_update": {
        "setup": "",
        "claim": "SELECT id FROM backtest_results WHERE id = ANY(%s) AND ml_feedback_submitted = false "
                 "AND feedback_batch_id IS NULL ORDER BY id FOR UPDATE SKIP LOCKED",
        "mark": "UPDATE backtest_results SET ml_feedback_submitted = true, feedback_batch_id = NULL "
                "WHERE id = ANY(%s)",
    },
    "hot_update": {
        "setup": "DROP INDEX ix_backtest_results_unsubmitted; ALTER TABLE backtest_results SET (fillfactor = 70)",
        "claim": "SELECT id FROM backtest_results WHERE id = ANY(%s) AND ml_feedback_submitted = false "
                 "AND feedback_batch_id IS NULL ORDER BY id FOR UPDATE SKIP LOCKED",
        "mark": "UPDATE backtest_results SET ml_feedback_submitted = true, feedback_batch_id = NULL "
                "WHERE id = ANY(%s)",
    },
    "pending_table": {
        "setup": "DROP INDEX ix_backtest_results_unsubmitted;" + PENDING.format(fk="", rejfk="", conflict=""),
        "claim": "SELECT result_id FROM bench_pending WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL "
                 "ORDER BY result_id FOR UPDATE SKIP LOCKED",
        "mark": "DELETE FROM bench_pending WHERE result_id = ANY(%s)",
    },
    "pending_explicit": {
        "setup": "DROP INDEX ix_backtest_results_unsubmitted;"
                 "CREATE TABLE bench_pending (result_id bigint PRIMARY KEY, rejected_batch_id integer)",
        "after_insert": "INSERT INTO bench_pending (result_id) SELECT unnest(%s::bigint[])",
        "claim": "SELECT result_id FROM bench_pending WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL "
                 "ORDER BY result_id FOR UPDATE SKIP LOCKED",
        "mark": "DELETE FROM bench_pending WHERE result_id = ANY(%s)",
    },
    "pending_fk": {
        "setup": "DROP INDEX ix_backtest_results_unsubmitted;"
                 + PENDING.format(fk=" REFERENCES backtest_results (id) ON DELETE CASCADE", rejfk="", conflict=""),
        "claim": "SELECT result_id FROM bench_pending WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL "
                 "ORDER BY result_id FOR UPDATE SKIP LOCKED",
        "mark": "DELETE FROM bench_pending WHERE result_id = ANY(%s)",
    },
    "pending_rejfk": {
        "setup": "DROP INDEX ix_backtest_results_unsubmitted;"
                 + PENDING.format(fk="", rejfk=" REFERENCES feedback_batches (id)", conflict=""),
        "claim": "SELECT result_id FROM bench_pending WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL "
                 "ORDER BY result_id FOR UPDATE SKIP LOCKED",
        "mark": "DELETE FROM bench_pending WHERE result_id = ANY(%s)",
    },
    "pending_upsert": {
        "setup": "DROP INDEX ix_backtest_results_unsubmitted;"
                 + PENDING.format(fk="", rejfk="", conflict=" ON CONFLICT (result_id) DO UPDATE SET "
                                                            "rejected_batch_id = NULL"),
        "claim": "SELECT result_id FROM bench_pending WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL "
                 "ORDER BY result_id FOR UPDATE SKIP LOCKED",
        "mark": "DELETE FROM bench_pending WHERE result_id = ANY(%s)",
    },
    "pending_claim_delete": {
        "setup": "DROP INDEX ix_backtest_results_unsubmitted;" + PENDING.format(fk="", rejfk="", conflict=""),
        "claim": "DELETE FROM bench_pending WHERE result_id IN (SELECT result_id FROM bench_pending "
                 "WHERE result_id = ANY(%s) AND rejected_batch_id IS NULL FOR UPDATE SKIP LOCKED) RETURNING result_id",
        "mark": None,
    },
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
        return tuple(conn.exec_driver_sql("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                                          "WHERE relname = 'backtest_results'").one())


def run(url: str, design: str, batches: list[list[dict]]) -> dict[str, float]:
    spec = DESIGNS[design]
    engine = make_engine(url, connect_args={"application_name": f"bench-mark-{design}"})
    before = updates(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_pending; DROP FUNCTION IF EXISTS bench_pending_fill CASCADE")
        conn.exec_driver_sql("TRUNCATE backtest_results, feedback_batches, strategies RESTART IDENTITY CASCADE")
    # Each design starts from the schema of the code, changed by its own setup.
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_backtest_results_unsubmitted")
        conn.exec_driver_sql("ALTER TABLE backtest_results RESET (fillfactor)")
        conn.exec_driver_sql("CREATE INDEX ix_backtest_results_unsubmitted ON backtest_results (id) "
                             "WHERE ml_feedback_submitted = false")
        if spec["setup"]:
            conn.exec_driver_sql(spec["setup"])
    spent = {"insert": 0, "claim": 0, "mark": 0}
    wall = {"insert": 0.0, "claim": 0.0, "mark": 0.0}
    n = 0
    with Session(engine) as session:
        conn = session.connection()
        raw = conn.connection.driver_connection
        pid = raw.info.backend_pid
        session.commit()
        for batch in batches:
            t, c = time.perf_counter(), oncpu_ns(pid)
            ids = list(insert_results(session, batch).values())
            if spec.get("after_insert"):
                session.connection().exec_driver_sql(spec["after_insert"], (ids,))
            session.commit()
            spent["insert"] += oncpu_ns(pid) - c
            wall["insert"] += time.perf_counter() - t
            ids.sort()
            raw = session.connection().connection.driver_connection
            with raw.cursor() as cur:
                t, c = time.perf_counter(), oncpu_ns(pid)
                cur.execute(spec["claim"], [ids])
                claimed = [r[0] for r in cur.fetchall()]
                spent["claim"] += oncpu_ns(pid) - c
                wall["claim"] += time.perf_counter() - t
                assert len(claimed) == len(ids), (design, len(claimed), len(ids))
                if spec["mark"]:
                    t, c = time.perf_counter(), oncpu_ns(pid)
                    cur.execute(spec["mark"], [claimed])
                    assert cur.rowcount == len(claimed)
                    spent["mark"] += oncpu_ns(pid) - c
                    wall["mark"] += time.perf_counter() - t
            t, c = time.perf_counter(), oncpu_ns(pid)
            session.commit()  # the commit ends the claim and the mark's transaction
            spent["mark"] += oncpu_ns(pid) - c
            wall["mark"] += time.perf_counter() - t
            n += len(ids)
    after = updates(engine)
    engine.dispose()
    hot = (after[0] - before[0], after[1] - before[1])
    out = {f"{k}_cpu_us": spent[k] / 1000 / n for k in spent}
    out.update({f"{k}_wall_us": wall[k] * 1e6 / n for k in wall})
    out["hot_share"] = hot[1] / hot[0] if hot[0] else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-db", default="edgeloop_bench_mark")
    ap.add_argument("--designs", default=",".join(DESIGNS))
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()
    designs = args.designs.split(",")
    url = recreate_pg_database(args.pg_db)
    upgrade(url, "0006")  # the schema before the pending table: every design starts from it
    batches = rows_for(args.results)
    results: dict[str, list[dict[str, float]]] = {d: [] for d in designs}
    try:
        for _ in range(args.rounds):
            for d in designs:
                results[d].append(run(url, d, batches))
    finally:
        if not args.keep:
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
