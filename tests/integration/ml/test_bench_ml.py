"""bench/ml.py's strategy steps through its own code, on a small scale against PostgreSQL: the
samples it stores must be ones the strategy trainer learns from (later-window results), or the
first training trains nothing and the retraining step has no serving model to label with."""

from __future__ import annotations

import pytest

from edgeloop.proto import ml_service_pb2 as pb

pytestmark = pytest.mark.integration


def test_the_strategy_steps_train_a_model_then_retrain_it_on_every_sample(stub, ml_server):
    from bench import ml as bench

    server, _ = ml_server
    events = bench._real_backtests(40, seed=1)
    stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=events), timeout=60)
    _, first = bench._train(stub, pb, "strategy", force=True)
    assert len(first.model_versions) == 1, first.reason

    bench._synthetic_samples(server.context.sessions, 400, seed=2)  # labelled by the serving model
    _, again = bench._train(stub, pb, "strategy", force=True)
    (version,) = [m for m in stub.ListModels(pb.ListModelsRequest(model_name="strategy"), timeout=5).models
                  if m.version == again.model_versions[0]]
    # Every strategy is a label once: its result on the window it was chosen on never is.
    assert version.metrics["n_train"] + version.metrics["n_held_out"] == 40 + 400
    assert stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).feedback_samples == 2 * (40 + 400)


def test_a_training_job_that_trains_nothing_stops_the_benchmark_with_its_reason(stub):
    from bench import ml as bench

    with pytest.raises(SystemExit, match="strategy training trained nothing: .*0 usable later-window samples"):
        bench._train(stub, pb, "strategy", force=True)
