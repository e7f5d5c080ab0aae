"""Valid and malformed `BacktestFinished` payloads for tests and benchmarks."""

from __future__ import annotations

import json
import random
from typing import Any


def valid_event(i: int, *, strategy: str | None = None, rng: random.Random | None = None) -> dict[str, Any]:
    r = rng or random.Random(i)
    bets = r.randint(0, 500)
    return {
        "schema_version": 1,
        "backtest_id": f"bt-{i:08d}",
        "strategy_id": strategy or f"strat-{i % 50:03d}",
        "strategy_name": f"test strategy {i % 50}",
        "params": {"min_edge": round(r.uniform(0, 0.1), 4), "staking": r.choice(["flat", "kelly"])},
        "window_start": "2019-08-01",
        "window_end": "2020-05-31",
        "method": "walk_forward",
        "metrics": {
            "total_bets": bets,
            "roi": round(r.uniform(-0.3, 0.2), 5),
            "profit": round(r.uniform(-50, 50), 3),
            "win_rate": round(r.random(), 4),
            "profit_factor": round(r.uniform(0.2, 2.5), 4),
            "sharpe_ratio": round(r.uniform(-2, 2), 4),
            "max_drawdown": round(r.uniform(0, 0.9), 4),
        },
    }


def malformed_payloads(n: int) -> list[tuple[str, bytes]]:
    """``n`` payloads cycling through every kind of bad input, with the expected reason."""
    base = valid_event(0)

    def with_metrics(**kw):
        return json.dumps({**base, "metrics": {**base["metrics"], **kw}})

    def without(field):
        return json.dumps({k: v for k, v in base.items() if k != field})

    kinds: list[tuple[str, str | bytes]] = [
        ("not_json", "{not json"),
        ("not_json", b"\xff\xfe\x00garbage"),
        ("not_object", "[1, 2, 3]"),
        ("missing_field", without("backtest_id")),
        ("missing_field", without("metrics")),
        ("missing_field", json.dumps({**base, "metrics": {"roi": 0.1}})),
        ("wrong_type", with_metrics(total_bets="many")),
        ("wrong_type", json.dumps({**base, "params": [1, 2]})),
        ("non_finite", with_metrics(roi=float("nan"))),
        ("non_finite", with_metrics(sharpe_ratio="Infinity")),
        ("out_of_range", with_metrics(total_bets=-3)),
        ("out_of_range", with_metrics(win_rate=1.7)),
        ("unknown_schema_version", json.dumps({**base, "schema_version": 99})),
        ("bad_date", json.dumps({**base, "window_start": "01/08/2019"})),
        ("oversized", json.dumps({**base, "params": {"blob": "x" * 70_000}})),
        ("bad_value", json.dumps({**base, "model_version": "v" * 65})),
    ]
    out = []
    for i in range(n):
        reason, payload = kinds[i % len(kinds)]
        if isinstance(payload, str):
            payload = payload.replace('"bt-00000000"', f'"bad-{i}"').encode()
        out.append((reason, payload))
    return out
