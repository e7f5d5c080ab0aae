"""Point in time through the whole service: results changed after a date in the market tables,
the outcome model retrained, and not one prediction for an earlier match moves."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sqlalchemy import case, update

from edgeloop.core.settings import settings_with
from edgeloop.marketdata.store import import_paths
from edgeloop.mlservice.server import create_server
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.db import make_engine
from edgeloop.schema.market import MarketEvent, MarketResult
from tests.integration.ml.conftest import DATA_DIR, wait_job

pytestmark = pytest.mark.integration

SEASONS = ("2013-14", "2014-15", "2015-16", "2016-17", "2017-18", "2018-19")
CUTOFF = date(2018, 1, 1)


@pytest.fixture
def market_db(pg_url):
    engine = make_engine(pg_url)
    import_paths(engine, [f"{DATA_DIR}/E0_{s}.csv" for s in SEASONS])
    yield engine
    engine.dispose()


def _predict_all(stub, event_ids):
    requests = [pb.PredictionRequest(event_id=e, selection=s) for e in event_ids for s in ("home", "draw", "away")]
    answers = stub.BatchPredict(pb.BatchPredictRequest(requests=requests), timeout=30).predictions
    return np.array([p.probability for p in answers]).reshape(-1, 3), [p.model_version for p in answers[::3]]


def test_results_after_a_date_never_change_an_earlier_prediction(market_db, pg_url, redis_url):
    import grpc

    from edgeloop.proto import ml_service_pb2_grpc as pb_grpc

    settings = settings_with(database_url=pg_url, redis_url=redis_url, ml_market_source="database")
    server, port = create_server("127.0.0.1:0", settings)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.MLServiceStub(ch)
            assert wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=5).job_id).status == "succeeded"
            with market_db.connect() as conn:
                rows = conn.execute(MarketEvent.__table__.select().where(MarketEvent.event_date >= date(2014, 8, 20))
                                    .order_by(MarketEvent.event_date)).all()
            before = [r.event_id for r in rows if r.event_date < CUTOFF]
            after = [r.event_id for r in rows if r.event_date >= CUTOFF]
            p_before, v_before = _predict_all(stub, before)
            p_after, _ = _predict_all(stub, after)

            # When every result from the cutoff on is rotated (H→A→D→H) and the model retrained
            later = MarketResult.event_id.in_([r.event_id for r in rows if r.event_date >= CUTOFF])
            with market_db.begin() as conn:
                conn.execute(update(MarketResult).where(later).values(
                    result=case((MarketResult.result == "H", "A"), (MarketResult.result == "A", "D"), else_="H"),
                    home_goals=case((MarketResult.result == "D", 1), else_=0),
                    away_goals=case((MarketResult.result == "H", 1), else_=0)))
            job = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=5).job_id)
            assert job.status == "succeeded", job.reason

            # Then every earlier prediction is bit-for-bit the same, from the same version …
            p_before2, v_before2 = _predict_all(stub, before)
            assert len(before) > 1000
            np.testing.assert_array_equal(p_before, p_before2)
            assert v_before == v_before2
            # … and the later ones did see the new results (so the test could have failed)
            p_after2, _ = _predict_all(stub, after)
            assert np.abs(p_after - p_after2).max() > 1e-3
    finally:
        server.stop(0).wait()
