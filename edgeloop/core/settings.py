"""The one settings object.

Read, in increasing priority, from defaults here, an optional YAML file (path in
``EDGELOOP_CONFIG``, else ``config/config.yaml`` when it exists) and ``EDGELOOP_*``
environment variables. Units are in the names (``_s``, ``_ms``) so nobody has to guess.
Every field is documented in ``config/config.yaml.example`` and ``docs/settings.md``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from edgeloop.core.errors import ConfigurationError
from edgeloop.core.redis_connect import is_sentinel, sentinel_nodes

DEFAULT_CONFIG_FILE = Path("config/config.yaml")


def _config_file() -> Path | None:
    path = os.environ.get("EDGELOOP_CONFIG")
    if path:
        return Path(path)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGELOOP_", extra="ignore", frozen=True)

    # --- services ---------------------------------------------------------------------
    # Redis for the event stream, dead letters, locks and (by default) the Celery broker and the cache.
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None  # Celery broker; defaults to redis_url
    result_backend_url: str | None = None  # Celery results; defaults to redis_url
    # The Sentinel group every sentinel://host:26379;sentinel://… URL above names (broker,
    # results, stream, locks and cache alike).
    redis_sentinel_master: str = "mymaster"
    database_url: str = "sqlite:///var/edgeloop.db"  # SQLAlchemy URL: postgresql://… (psycopg 3) or sqlite:///path
    ml_grpc_target: str = "127.0.0.1:50051"  # host:port where clients reach the ML service
    ml_grpc_port: int = 50051  # port `edgeloop ml serve` listens on for gRPC
    ml_http_port: int = 8000  # port of the ML service's HTTP API (/health, /metrics, /api/v1/…)
    ml_http_url: str = "http://127.0.0.1:8000"  # where clients reach the ML service's HTTP API
    # `edgeloop web`: the read-only pages of the loop, behind ml_auth_token (docs/web.md). Without
    # a token they bind only to a loopback address.
    web_port: int = Field(default=8080, ge=0, le=65535)
    web_bind_host: str = "127.0.0.1"  # address `edgeloop web` binds

    # --- the event stream -------------------------------------------------------------
    stream_key: str = "backtests.finished"  # the Redis stream producers XADD finished backtests to
    # Partitions of the stream (key, key:1, key:2 …); producers pick one by strategy id.
    stream_partitions: int = Field(default=1, ge=1, le=1024)
    # Where events that cannot be parsed, validated or stored go, with the reason.
    dead_letter_stream: str = "backtests.dead"
    consumer_group: str = "edgeloop-ingest"  # the consumer group every worker's stream consumers join
    # Entries one consumer reads (XREADGROUP COUNT) and stores per batch.
    ingest_batch_size: int = Field(default=500, ge=1, le=10_000)
    ingest_block_ms: int = Field(default=500, ge=1)  # how long a consumer blocks waiting for new entries
    # Pending entries idle this long belong to a consumer presumed dead and are claimed.
    claim_idle_ms: int = Field(default=15_000, ge=100)
    # An entry delivered more often than this without being stored or dead-lettered (its
    # consumer died on it each time) is dead-lettered as `poison` instead of processed again.
    max_deliveries: int = Field(default=5, ge=1)
    # Stream consumer threads in each Celery worker (0: this worker does not ingest). Two by
    # default: a consumer waits on PostgreSQL (its insert, its commit) for about a third of a
    # batch, and a second one validates its batch meanwhile (docs/scaling.md, measured).
    ingest_consumers_per_worker: int = Field(default=2, ge=0, le=16)
    max_event_bytes: int = Field(default=64 * 1024, ge=256)  # larger payloads are dead-lettered as oversized
    stream_maxlen: int = Field(default=1_000_000, ge=1000)  # approximate MAXLEN on XADD
    dead_letter_maxlen: int = Field(default=100_000, ge=100)  # approximate MAXLEN of the dead-letter stream

    # --- feedback to the ML service -----------------------------------------------------
    # Results per SubmitBacktestFeedback call: an ingest batch (``ingest_batch_size``) in one call.
    feedback_batch_size: int = Field(default=500, ge=1, le=5000)
    # An idle consumer flushes pending feedback at least this often.
    feedback_flush_interval_s: float = Field(default=1.0, gt=0)
    # Longest backoff between feedback attempts while the ML service is down.
    feedback_retry_max_s: float = Field(default=60.0, gt=0)

    # --- ML client and cache ------------------------------------------------------------
    ml_timeout_s: float = Field(default=5.0, gt=0)  # deadline of every call to the ML service
    ml_breaker_failures: int = Field(default=5, ge=1)  # consecutive failures that open the client's circuit breaker
    ml_breaker_reset_s: float = Field(default=5.0, gt=0)  # how long the breaker stays open before one probe call
    # Bearer token required by the ML service and sent by clients; unset: no authentication.
    ml_auth_token: str | None = None
    # Server certificate (PEM) of the ML service; with ml_tls_key_file turns TLS on.
    ml_tls_cert_file: str | None = None
    ml_tls_key_file: str | None = None  # server private key (PEM) of the ML service
    # CA bundle clients verify the service with (and the service verifies client certificates with).
    ml_tls_ca_file: str | None = None
    cache_ttl_s: int = Field(default=3600, ge=1)  # lifetime of every prediction cache entry
    cache_prefix: str = "edgeloop:pred"  # key prefix of the prediction cache in Redis
    # The prediction cache's Redis, the one Redis that may evict (allkeys-lru); unset or empty:
    # redis_url (docs/cache.md, Redis memory policy).
    cache_redis_url: str | None = None
    # cache_redis_url is a node of a Redis Cluster: the cache's keys share one hash tag (the
    # prefix in braces), so its multi-key reads and scripts stay on one slot (docs/cache.md).
    cache_redis_cluster: bool = False
    # A cache must not block: Redis calls give up after this, and after a failure Redis is
    # left alone (answers come from the ML service) for cache_redis_retry_s.
    cache_redis_timeout_s: float = Field(default=0.25, gt=0)
    cache_redis_retry_s: float = Field(default=1.0, gt=0)  # after a Redis failure the cache is bypassed this long
    # Longest a process may key predictions by a model catalogue nobody told it changed.
    cache_catalogue_ttl_s: float = Field(default=5.0, gt=0)
    # Level 1: each process's own cache in front of Redis (docs/cache.md). 0 entries turns it off.
    cache_local_max_entries: int = Field(default=100_000, ge=0)
    cache_local_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)  # keys + values + per-entry overhead
    cache_local_ttl_s: float = Field(default=60.0, gt=0)  # an entry's lifetime in level 1 (below cache_ttl_s)
    # Coherence bound: level 1 serves only while its invalidation channel answered a ping sent
    # less than this long ago, so every invalidation published earlier has been applied.
    cache_local_bound_s: float = Field(default=0.1, gt=0)
    ml_tls_client_cert_file: str | None = None  # client certificate for mutual TLS
    ml_tls_client_key_file: str | None = None  # client private key for mutual TLS

    # --- ML service (server side) ---------------------------------------------------------
    ml_bind_host: str = "127.0.0.1"  # address `edgeloop ml serve` binds; "0.0.0.0" serves other machines (then set a token or TLS)
    ml_server_threads: int = Field(default=8, ge=1, le=256)  # gRPC worker threads of the ML service
    ml_stop_grace_s: float = Field(default=5.0, ge=0)  # calls in flight may finish this long after SIGTERM
    ml_max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)  # largest gRPC request/response of the ML service
    ml_max_batch_items: int = Field(default=10_000, ge=1)  # most BatchPredict requests or feedback results in one call
    ml_max_candidates: int = Field(default=100, ge=1)  # largest GenerateStrategy max_candidates
    ml_max_http_body_bytes: int = Field(default=64 * 1024, ge=1024)  # largest body the ML service's HTTP API reads
    # Threads serving the HTTP API's connections; up to 4 more connections per thread wait for
    # one, and any beyond are closed at once.
    ml_http_threads: int = Field(default=8, ge=1, le=256)
    # Every read and write of an HTTP connection (the TLS handshake included) gives up after
    # this: a client that sends nothing, or half a request, frees its thread then.
    ml_http_timeout_s: float = Field(default=10.0, gt=0)
    # With ml_auth_token set, /metrics needs the token too (Prometheus: authorization
    # credentials_file); true leaves /metrics open to anyone who can reach the port.
    ml_metrics_public: bool = False
    ml_holdout_fraction: float = Field(default=0.2, gt=0, lt=1)  # share of feedback no strategy model trains on (champion/challenger)
    # Where the outcome model reads matches: "database" (after `edgeloop data import`), "csv"
    # (files in data_dir), or "auto": the database when it holds any match, else the files.
    ml_market_source: str = Field(default="auto", pattern="^(auto|database|csv)$")
    ml_recommend_min_edge: float = Field(default=0.0, ge=0)  # predictions say "back" when p × best price − 1 exceeds it
    # A replica renews the lease of the training job it runs this often (a third of it); a job
    # whose lease lapsed (its replica died) is taken over by another replica sharing the database.
    ml_training_lease_s: float = Field(default=60.0, gt=0)
    ml_training_max_attempts: int = Field(default=3, ge=1)  # a job started this often without finishing fails
    # TrainModels with the same model and force flag as a queued or running job returns that job.
    ml_training_dedup: bool = True
    # Per-client token bucket of the gRPC service: calls per second, 0 = no limit (docker-compose
    # turns it on); a client over it gets RESOURCE_EXHAUSTED with retry-after-ms in the trailers.
    ml_rate_limit_per_s: float = Field(default=0.0, ge=0)
    ml_rate_limit_burst: int = Field(default=200, ge=1)  # calls a client may make at once before the rate applies

    # --- training and lifecycle ---------------------------------------------------------
    retraining_interval_hours: float = Field(default=24.0, gt=0)  # beat considers retraining this often
    # Retrain only when at least this many new feedback samples arrived since the last training.
    min_new_feedback: int = Field(default=20, ge=0)
    # Beat refreshes strategy rankings (composite scores, activation) this often.
    ranking_interval_s: float = Field(default=300.0, gt=0)
    discovery_interval_s: float = Field(default=3600.0, gt=0)  # beat runs the discovery pipeline this often
    # Beat re-checks active strategies on seasons newer than their last verdict this often.
    recheck_interval_s: float = Field(default=3600.0, gt=0)
    # A strategy with a composite score at or above this is activated.
    activation_threshold: float = Field(default=0.65, ge=0, le=1)
    # An active strategy whose composite score falls below this is deactivated.
    deactivation_threshold: float = Field(default=0.50, ge=0, le=1)
    # Fewer bets in its backtest and a strategy is not activated, whatever its score.
    min_bets_for_activation: int = Field(default=30, ge=0)
    min_state_s: float = Field(default=0.0, ge=0)  # a strategy keeps a status at least this long (no flapping)
    # --- schedules, discovery and live predictions (workers/beat.py, edgeloop/services/discovery.py) ---
    feedback_flush_beat_s: float = Field(default=60.0, gt=0)  # safety net; consumers flush continuously
    # Beat refreshes live predictions for upcoming events this often.
    predictions_interval_s: float = Field(default=900.0, gt=0)
    # Live predictions cover events starting within this many days.
    predictions_horizon_days: int = Field(default=7, ge=1)
    retrain_model_name: str = "strategy"  # the model that learns from backtest feedback
    retrain_wait_s: float = Field(default=300.0, ge=0)  # discovery waits this long for a training job
    # Strategies GenerateStrategy proposes per discovery run.
    discovery_candidates: int = Field(default=20, ge=1, le=1000)
    # Risk level passed to GenerateStrategy.
    discovery_risk_level: str = Field(default="medium", pattern="^(low|medium|high)$")
    discovery_leagues: list[str] = ["E0"]  # leagues candidates are backtested on
    # Three windows per discovery run, in whole seasons (July–June), ending with the newest
    # season (edgeloop/services/windows.py): candidates are chosen on the *selection* window,
    # those passing the selection gate are judged on the later *validation* window, and the
    # *final* window after it is never used for a decision (benchmarks report on it). As
    # seasons are imported the windows roll forward. The defaults suit the shipped seasons
    # (2005-06 … 2025-26): selection 2018-19 … 2021-22, validation 2022-23 … 2023-24, final
    # 2024-25 … 2025-26. Seasons in the selection window:
    discovery_selection_seasons: int = Field(default=4, ge=1, le=30)
    discovery_validation_seasons: int = Field(default=2, ge=1, le=30)  # seasons in the validation window
    discovery_final_seasons: int = Field(default=2, ge=0, le=30)  # seasons in the final window (0: none)
    # The newest season the windows end with, e.g. "2025-26"; empty: the newest season of the
    # discovery leagues in data_dir.
    discovery_through_season: str = Field(default="", pattern=r"^(|\d{4}-\d{2})$")
    # The activation gate (edgeloop/core/evidence.py), on the validation window: enough bets
    # (min_bets_for_activation), a yield whose lower confidence bound (yield − z × its standard
    # error) is above gate_min_yield_lcb, and a deflated Sharpe ratio (Bailey & López de Prado
    # 2014, for the number of strategies tried on that window) of at least gate_min_dsr.
    # z of the yield's lower confidence bound (1.645: one-sided 95%).
    gate_yield_z: float = Field(default=1.645, ge=0)
    gate_min_yield_lcb: float = Field(default=0.0, ge=-1, le=1)  # the yield's lower bound must exceed this
    gate_min_dsr: float = Field(default=0.95, ge=0, le=1)  # least deflated Sharpe ratio that activates
    # The selection gate, on the selection window: at least min_bets_for_activation bets and an
    # in-sample yield above this; only candidates passing it are backtested on validation.
    selection_min_yield: float = Field(default=0.0, ge=-1, le=1)
    # A discovery run waits this long for its backtests.
    discovery_backtest_timeout_s: float = Field(default=1800.0, gt=0)
    # football-data.co.uk CSV files; a relative path is looked up from the working directory,
    # then in the installed package (where the shipped seasons are, the default)
    data_dir: str = "data/football-data"

    # --- backtests: what a bettor could take (edgeloop.backtester.execution) --------------
    # Betfair Exchange commission on each market's net winnings, for bets at BFE/BFEC prices.
    exchange_commission: float = Field(default=0.05, ge=0, le=0.5)
    # A lay is struck this many steps of the Betfair price ladder above the exchange's back price.
    exchange_lay_spread_ticks: int = Field(default=1, ge=0, le=20)
    # Bet at MAX/MAXC prices also on matches whose maximum prices add up to less than 100%
    # (skipped by default: no single bettor could take all three).
    backtest_keep_max_arbitrage: bool = False

    # --- operations ---------------------------------------------------------------------
    metrics_port: int = 9808  # worker /metrics; 0 turns it off
    metrics_bind_local: bool = True  # 127.0.0.1 only; set false in containers
    # Directory for prometheus_client's multiprocess mode (Celery prefork); empty = off.
    prometheus_multiproc_dir: str = ""
    flower_user: str = "edgeloop"  # Flower's basic-auth user
    flower_password: str = "edgeloop"  # Flower's basic-auth password: change it
    log_level: str = "INFO"  # log level of edgeloop's own processes

    @field_validator("redis_url", "broker_url", "result_backend_url", "cache_redis_url")
    @classmethod
    def _redis_scheme(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v == "" and info.field_name != "redis_url":  # docker-compose passes an unset variable as empty
            return None
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://", "sentinel://", "amqp://")):
            raise ValueError(f"not a Redis URL: {v!r}")
        if v is not None and is_sentinel(v):
            try:
                sentinel_nodes(v)
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _cache_hash_tag(self) -> Settings:
        # On a cluster every cache key must hash to one slot: "{prefix}:p:…" hashes "prefix" only.
        if self.cache_redis_cluster and "{" not in self.cache_prefix:
            object.__setattr__(self, "cache_prefix", "{" + self.cache_prefix + "}")  # still being built: frozen after
        return self

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def result_backend(self) -> str:
        return self.result_backend_url or self.redis_url

    @property
    def stream_keys(self) -> list[str]:
        """Every partition of the event stream; consumers read them all."""
        return [self.stream_key] + [f"{self.stream_key}:{i}" for i in range(1, self.stream_partitions)]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests call ``get_settings.cache_clear()``."""
    return Settings()


def settings_with(**overrides: Any) -> Settings:
    """A copy of the current settings with some fields replaced (validated)."""
    return Settings(**{**get_settings().model_dump(), **overrides})
