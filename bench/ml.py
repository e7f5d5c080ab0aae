"""ML service benchmark, against a real gRPC server on a free port and a scratch database.

1. Walk-forward training of every outcome version on the shipped data (one TrainModels job,
   wall time from the request to ``succeeded``), then the quality table: per season, held-out
   log-loss and Brier score of the model beside the de-margined market average and Pinnacle's
   de-margined closing prices (on the events that have them). A season counts only if no
   choice that shaped its version looked at it: its regularisation was chosen on earlier
   seasons (``mlservice/outcome_selection.py``). The first season with a version has no
   earlier season to choose on; it is printed apart and left out of the figures.
2. BatchPredict of 1,000 selections (334 matches × home/draw/away): p50 and p99 of 200 calls.
3. GenerateStrategy of 10 candidates, after the strategy model learnt from 1,000 real
   backtests (the backtester with de-margined market probabilities): median of 20 calls.
4. Retraining the strategy model on 100,000 feedback samples (a TrainModels job, wall time,
   loading the samples from the database included). 1,000 of them are real backtests; the
   other 99,000 parameter sets are labelled by the model fitted on those plus its residual
   noise, because 99,000 more real backtests would take minutes and the fit's cost does not
   depend on where the labels came from.

The strategy model learns only later-window scores (``mlservice/strategy_training.py``): a
strategy's result on a window that starts after another window of it ended. So every strategy
here has two results, on ``CHOSEN_ON`` (the window it was "chosen on", never a label) and on
``LATER`` (its label, before the label cutoff of the shipped data): "100,000 samples" are
100,000 labels among 200,000 stored results. A training job that trains nothing (every
sample skipped) stops the benchmark with the job's reason instead of timing a skip.

``--retrain-only`` runs step 4 alone (with the 1,000 real backtests and the strategy model of
step 3 that labels its samples). ``--json`` ends the output with one line, a JSON object with ``batch_predict_1000_p50_ms``,
``batch_predict_1000_p99_ms``, ``generate_10_ms``, ``retrain_100k_s`` (wall), ``retrain_100k_cpu_s``
(this process's CPU time meanwhile: the service trains in it; steadier under load),
``retrain_labels``, ``walk_forward_s`` and
``logloss`` (held-out season → model / market_avg / pinnacle_close), ``logloss_vs_market_pct``
(the model's log-loss over all held-out events, relative to the market average's) and
``seasons_not_held_out``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from bench._harness import emit  # noqa: E402

# (start, end) of the two windows each strategy is backtested on; see the docstring.
CHOSEN_ON = (date(2015, 8, 1), date(2017, 6, 30))
LATER = (date(2017, 8, 1), date(2019, 6, 30))
LEAGUES = ("E0", "D1")


def _wait(stub, pb, job_id: str, timeout_s: float = 600.0):
    deadline = time.monotonic() + timeout_s
    while True:
        status = stub.GetTrainingStatus(pb.TrainingStatusRequest(job_id=job_id), timeout=10)
        if status.status in ("succeeded", "failed"):
            if status.status == "failed":
                raise SystemExit(f"benchmark: training job failed: {status.reason}")
            return status
        if time.monotonic() > deadline:
            raise SystemExit("benchmark: training job timed out")
        time.sleep(0.05)


def _train(stub, pb, model_name: str, force: bool = False) -> tuple[float, object]:
    started = time.perf_counter()
    job = stub.TrainModels(pb.TrainModelsRequest(model_name=model_name, force=force), timeout=10)
    status = _wait(stub, pb, job.job_id)
    elapsed = time.perf_counter() - started
    if not status.model_versions:  # a skipped trainer "succeeds": its time measures nothing
        raise SystemExit(f"benchmark: {model_name} training trained nothing: {status.reason}")
    return elapsed, status


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def _quality(stub, pb) -> dict[str, dict[str, float | None]]:
    """Per season, the serving version's held-out figures and whether a choice was made on
    earlier seasons (``choice_seasons``: how many it looked at)."""
    rows = {}
    for m in stub.ListModels(pb.ListModelsRequest(model_name="outcome"), timeout=10).models:
        if m.status != "serving":
            continue
        season = f"{int(m.train_end[:4])}-{(int(m.train_end[:4]) + 1) % 100:02d}"
        x = m.metrics
        rows[season] = {
            "events": int(x.get("n_events", 0)),
            "model": x.get("logloss"), "market_avg": x.get("logloss_market_avg"),
            "pinnacle_close": x.get("logloss_pinnacle_close"),
            "model_on_pinnacle_events": x.get("logloss_on_pinnacle_events"),
            "brier_model": x.get("brier"), "brier_market_avg": x.get("brier_market_avg"),
            "brier_pinnacle_close": x.get("brier_pinnacle_close"),
            "held_out": x.get("choice_seasons", 0) > 0,
        }
    return dict(sorted(rows.items()))


def _real_backtests(n: int, seed: int):
    from edgeloop.backtester.report import to_event
    from edgeloop.backtester.run import Window, backtest
    from edgeloop.mlservice.strategy_generation import RISK_LIMITS, random_params
    from edgeloop.mlservice.strategy_model import canonical_params

    rng = np.random.default_rng(seed)
    windows = [Window(*CHOSEN_ON, LEAGUES), Window(*LATER, LEAGUES)]
    events = []
    for _ in range(n):
        params = canonical_params({**random_params(rng, RISK_LIMITS["high"]), "probability_source": "market"})
        events.extend(to_event(backtest(params, window)) for window in windows)
    return events


def _synthetic_samples(sessions, n: int, seed: int) -> None:
    """n strategies, each with a result on CHOSEN_ON and on LATER (its label), labelled by the
    serving strategy model + residual noise (see the docstring)."""
    from sqlalchemy import insert, select

    from edgeloop.mlservice.strategy_generation import RISK_LIMITS, random_params
    from edgeloop.mlservice.strategy_model import StrategyModel, params_fingerprint
    from edgeloop.schema.base import utcnow
    from edgeloop.schema.mlstore import FeedbackSample, ModelVersion

    rng = np.random.default_rng(seed)
    with sessions() as s:
        artifact = s.scalars(select(ModelVersion.artifact).where(ModelVersion.model_name == "strategy",
                                                                 ModelVersion.status == "serving")).first()
    model = StrategyModel.from_bytes(artifact)
    params = [random_params(rng, RISK_LIMITS["high"]) for _ in range(n)]
    keys = [params_fingerprint(p) for p in params]
    est = model.estimate(params)
    now = utcnow()
    rows = []
    for tag, (start, end) in (("chosen", CHOSEN_ON), ("later", LATER)):
        labels = est.mean + rng.normal(0, 1, est.mean.shape) * model.residual_std
        rows += [{
            "backtest_id": f"bt-synthetic-{tag}-{i}", "strategy_id": f"s-synthetic-{i}", "strategy_name": "",
            "params": p, "window_start": start, "window_end": end, "method": "synthetic", "model_version": None,
            "metrics": {"roi": float(y[1]), "max_drawdown": float(np.clip(y[2], 0, 1)),
                        "win_rate": float(np.clip(y[3], 0, 1))},
            "backtest_score": float(np.clip(y[0], 0, 1)), "params_key": key, "batch_id": "bench",
            "received_at": now} for i, (p, key, y) in enumerate(zip(params, keys, labels))]
    with sessions.begin() as s:
        for i in range(0, len(rows), 5000):
            s.execute(insert(FeedbackSample), rows[i:i + 5000])


def _walk_forward(stub, pb, figures: dict) -> None:
    """Step 1: walk-forward training of the outcome versions, then the quality table."""
    walk_s, job = _train(stub, pb, "outcome")
    figures["walk_forward_s"] = round(walk_s, 2)
    quality = _quality(stub, pb)
    held = {k: r for k, r in quality.items() if r["held_out"]}
    print(f"walk-forward training, {len(job.model_versions)} outcome versions: {walk_s:.1f} s (target < 120 s)")
    print("held-out log-loss and Brier score per season (each season's version chosen on earlier seasons "
          "only); the Pinnacle closing column covers only the events with its closing prices, "
          "'model (P)' is the model on those same events")
    print(f"{'season':<8} {'events':>6}  {'log-loss model':>14} {'market avg':>10} {'Pinnacle cl.':>12}"
          f" {'model (P)':>9}  {'Brier model':>11} {'market avg':>10} {'Pinnacle cl.':>12}")
    fmt = lambda v: f"{v:.4f}" if v is not None else "–"  # noqa: E731
    for season, r in held.items():
        print(f"{season:<8} {r['events']:>6}  {fmt(r['model']):>14} {fmt(r['market_avg']):>10} "
              f"{fmt(r['pinnacle_close']):>12} {fmt(r['model_on_pinnacle_events']):>9}  {fmt(r['brier_model']):>11} {fmt(r['brier_market_avg']):>10} "
              f"{fmt(r['brier_pinnacle_close']):>12}")
    events = sum(r["events"] for r in held.values())
    model_ll = sum(r["model"] * r["events"] for r in held.values()) / events
    market_ll = sum(r["market_avg"] * r["events"] for r in held.values()) / events
    per_season = [100 * (r["model"] / r["market_avg"] - 1) for r in held.values()]
    figures["logloss_vs_market_pct"] = round(100 * (model_ll / market_ll - 1), 3)
    print(f"{len(held)} held-out seasons, {events:,} events: model {model_ll:.4f} vs market average "
          f"{market_ll:.4f} ({figures['logloss_vs_market_pct']:+.3f}%; per season {min(per_season):+.2f}% "
          f"… {max(per_season):+.2f}%)")
    figures["seasons_not_held_out"] = [k for k in quality if k not in held]
    print(f"not held out (no earlier season to choose on): {', '.join(figures['seasons_not_held_out'])}")
    figures["logloss"] = {s: {k: r[k] for k in ("model", "market_avg", "pinnacle_close")} for s, r in held.items()}


def _batch_predict(stub, pb, figures: dict, data_dir: str, calls: int) -> None:
    """Step 2: BatchPredict of 1,000 selections."""
    from edgeloop.marketdata import load_window

    w = load_window(["E0"], date(2023, 8, 1), date(2024, 6, 30), data_dir=data_dir)
    requests = [pb.PredictionRequest(event_id=e, selection=s) for e in w.event_ids[:334]
                for s in ("home", "draw", "away")][:1000]
    batch = pb.BatchPredictRequest(requests=requests)
    for _ in range(5):
        stub.BatchPredict(batch, timeout=10)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        stub.BatchPredict(batch, timeout=10)
        times.append((time.perf_counter() - t) * 1000)
    figures["batch_predict_1000_p50_ms"] = round(_percentile(times, 50), 2)
    figures["batch_predict_1000_p99_ms"] = round(_percentile(times, 99), 2)
    print(f"BatchPredict 1,000 selections: p50 {figures['batch_predict_1000_p50_ms']} ms, "
          f"p99 {figures['batch_predict_1000_p99_ms']} ms (target p50 < 20 ms)")


def _generate(stub, pb, figures: dict) -> None:
    """Step 3's timing: GenerateStrategy of 10 candidates."""
    gen = pb.GenerateStrategyRequest(max_candidates=10, constraints=pb.StrategyConstraints(risk_level="medium"))
    stub.GenerateStrategy(gen, timeout=10)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        got = stub.GenerateStrategy(gen, timeout=10).strategies
        times.append((time.perf_counter() - t) * 1000)
    assert len(got) == 10
    figures["generate_10_ms"] = round(statistics.median(times), 1)
    print(f"GenerateStrategy 10 candidates: {figures['generate_10_ms']} ms median (target < 500 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    parser.add_argument("--calls", type=int, default=200, help="BatchPredict calls measured")
    parser.add_argument("--retrain-only", action="store_true",
                        help="step 4 only (after the strategy model it labels with): no walk-forward training, "
                             "BatchPredict or GenerateStrategy")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from edgeloop.core.settings import settings_with
    from edgeloop.mlservice.server import create_server
    from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
    from edgeloop.schema.db import upgrade

    tmp = tempfile.TemporaryDirectory(prefix="edgeloop-bench-ml-")
    url = args.database_url or f"sqlite:///{tmp.name}/ml.db"
    upgrade(url)
    settings = settings_with(database_url=url, data_dir=str(ROOT / "data" / "football-data"), ml_market_source="csv")
    server, port = create_server("127.0.0.1:0", settings)
    server.start()
    figures: dict = {}
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
            stub = pb_grpc.MLServiceStub(ch)

            if not args.retrain_only:
                _walk_forward(stub, pb, figures)
                _batch_predict(stub, pb, figures, settings.data_dir, args.calls)
            events = _real_backtests(1000, seed=1)
            for i in range(0, len(events), 500):
                stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=events[i:i + 500]), timeout=60)
            _train(stub, pb, "strategy", force=True)
            if not args.retrain_only:
                _generate(stub, pb, figures)
            _synthetic_samples(server.context.sessions, 99_000, seed=2)
            cpu = time.process_time()  # the service's training thread is in this process
            retrain_s, job = _train(stub, pb, "strategy", force=True)
            figures["retrain_100k_s"] = round(retrain_s, 2)
            figures["retrain_100k_cpu_s"] = round(time.process_time() - cpu, 2)
            stored = stub.HealthCheck(pb.HealthCheckRequest(), timeout=10).feedback_samples
            version = next(m for m in stub.ListModels(pb.ListModelsRequest(model_name="strategy"), timeout=10).models
                           if m.version == job.model_versions[0])
            labels = int(version.metrics["n_train"] + version.metrics.get("n_held_out", 0))
            figures["retrain_labels"] = labels
            print(f"retraining the strategy model on {labels:,} samples (later-window labels, of {stored:,} stored "
                  f"results; {version.status}): {retrain_s:.1f} s, CPU {figures['retrain_100k_cpu_s']:.1f} s (target < 30 s)")
    finally:
        server.stop(0).wait()
        tmp.cleanup()
    emit(figures, args.json)


if __name__ == "__main__":
    main()
