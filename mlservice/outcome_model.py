"""The outcome model: P(home), P(draw), P(away) of a match, walk-forward by season.

Model: multinomial logistic regression (one softmax, so an event's three probabilities sum to
1) with the de-margined market log-probabilities as a fixed offset: it learns how to correct
the market from ratings, form, home advantage, Pinnacle's deviation and bookmaker
disagreement, shrunk towards "no correction" by an L2 penalty. A softmax fitted by log-loss
is calibrated on its training distribution; the per-season held-out scores check it.

Walk-forward: for each season S, one version trained on every played event dated before S's
first match (``train_end``) and evaluated on S, which it never saw; which version serves S
(its regularisation, champion or challenger) is chosen on the seasons before S only
(``outcome_selection``). A prediction for an event uses the newest version whose ``train_end``
is strictly before the event's date (point in time): the training data ends at least a day
before the event, so whoever checks the version's ``train_end`` against the kick-off (the
backtester does) agrees even when the kick-off time is unknown. Matches on a season's opening
day are therefore served by the previous version.

Per-selection outputs (documented in docs/ml-service.md):

* ``probability``: the model's probability of the selection;
* ``confidence`` = 1 − H(p) / ln 3, with H the entropy of the event's three probabilities:
  0 for a coin-toss-like (uniform) match, towards 1 when one outcome is near certain;
* ``recommendation``: ``back`` when probability × best pre-match price − 1 > min_edge (the
  expected return of a unit back bet at the best price is positive beyond the threshold),
  else ``none``. ``lay`` is never produced: the shipped data has no lay prices to judge it by.

Artifacts are ``.npz`` bytes (arrays only, loaded with ``allow_pickle=False``); one this code cannot
read is ``ModelArtifactUnreadable`` naming its version (``artifacts``).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from scipy.optimize import minimize

from edgeloop.mlservice.artifacts import read_arrays
from edgeloop.mlservice.features import FEATURE_NAMES, OFFSET_COLUMNS, FeatureSet

MODEL_NAME = "outcome"
SELECTIONS = ("home", "draw", "away")
# Inverse L2 strength on the corrections (per summed log-loss) where no choice can be made:
# a season with no earlier season to judge on (``outcome_selection`` tunes C walk-forward for
# every other season, and the held-out table leaves such a season out).
DEFAULT_C = 0.001
MIN_TRAIN_EVENTS = 300  # fewer played events than this before a season: no version for it
EPS = 1e-12


@dataclass(frozen=True)
class OutcomeModel:
    """softmax(log p_market + W·z + b), z the standardised features (the market's included).

    The market's log-probabilities enter as a fixed offset, so W = 0, b = 0 *is* the market;
    an L2 penalty on W (strength 1/C) shrinks the learned corrections towards it. That keeps
    a thin or unusual training season from pushing the model far from the market (plain
    logistic regression on the same columns lost 170% log-loss on 2007-08 because a column
    had no variance in its two training seasons).
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (3, f): the offset columns are features too, so the fit can re-scale the market
    intercept: np.ndarray  # (3,)
    feature_names: tuple[str, ...] = FEATURE_NAMES

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, C: float = DEFAULT_C) -> "OutcomeModel":
        if len(np.unique(y)) < 3:
            raise ValueError("training data must contain home wins, draws and away wins")
        offset, Z = X[:, :OFFSET_COLUMNS], X
        mean, scale = Z.mean(axis=0), Z.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        Z = (Z - mean) / scale
        n, f = Z.shape
        onehot = np.eye(3)[y]

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W, b = theta[: 3 * f].reshape(3, f), theta[3 * f:]
            logits = offset + Z @ W.T + b
            logits -= logits.max(axis=1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            diff = np.exp(logp) - onehot  # d(−log-lik)/d logits
            loss = -np.sum(logp * onehot) + np.sum(W * W) / (2 * C)
            gW = diff.T @ Z + W / C
            return loss / n, np.concatenate([gW.ravel(), diff.sum(axis=0)]) / n

        res = minimize(loss_grad, np.zeros(3 * f + 3), jac=True, method="L-BFGS-B", options={"maxiter": 500})
        W, b = res.x[: 3 * f].reshape(3, f), res.x[3 * f:]
        return cls(mean=mean, scale=scale, coef=W, intercept=b)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = X[:, :OFFSET_COLUMNS] + ((X - self.mean) / self.scale) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept,
                 feature_names=np.array(self.feature_names, dtype=str))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, version: str = "") -> "OutcomeModel":
        """The model stored as ``data`` (``to_bytes``); ``version`` names it in errors. Bytes this
        code cannot read as one (empty, truncated, corrupt, other features) raise
        ``ModelArtifactUnreadable`` (``artifacts.read_arrays``)."""
        z = read_arrays(data, MODEL_NAME, version, FEATURE_NAMES)
        return cls(mean=z["mean"], scale=z["scale"], coef=z["coef"], intercept=z["intercept"])


# --- scores ------------------------------------------------------------------------------

def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0))))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    onehot = np.eye(3)[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def confidence(p: np.ndarray) -> np.ndarray:
    """1 − normalised entropy of each row of (n, 3) probabilities, in [0, 1]."""
    h = -np.sum(p * np.log(np.clip(p, EPS, 1.0)), axis=1)
    return np.clip(1.0 - h / np.log(3.0), 0.0, 1.0)


def backs(p: np.ndarray, best_price: np.ndarray, min_edge: float = 0.0) -> np.ndarray:
    """Where the default rule recommends ``back`` (elementwise; ``none`` elsewhere): a finite
    best price and p × best price − 1 > min_edge. A NaN probability is never ``back``."""
    return np.isfinite(best_price) & (p * best_price - 1.0 > min_edge)


# --- walk-forward ------------------------------------------------------------------------

@dataclass
class SeasonVersion:
    """One walk-forward version: trained on events before ``train_end``, held out: ``season``."""

    season: str
    train_start: date
    train_end: date
    sample_count: int
    model: OutcomeModel
    metrics: dict[str, float] = field(default_factory=dict)
    data_hash: str = ""


def season_starts(fs: FeatureSet) -> list[tuple[str, np.datetime64]]:
    """(season, first match date across leagues) in chronological order."""
    starts: dict[str, np.datetime64] = {}
    for s, d in zip(fs.seasons, fs.dates):
        if s not in starts or d < starts[s]:
            starts[s] = d
    return sorted(starts.items(), key=lambda kv: kv[1])


def _as_date(d: np.datetime64) -> date:
    return d.astype("datetime64[D]").astype(object)


def evaluate(model: OutcomeModel, fs: FeatureSet, mask: np.ndarray) -> dict[str, float]:
    """Held-out scores of ``model`` on the played events of ``mask``, beside the market's."""
    idx = np.flatnonzero(mask & (fs.results >= 0))
    if len(idx) == 0:
        return {"n_events": 0.0}
    y = fs.results[idx].astype(int)
    p = model.predict_proba(fs.X[idx])
    avg = fs.market_avg[idx]
    out = {
        "n_events": float(len(idx)),
        "logloss": log_loss(p, y), "brier": brier(p, y),
        "logloss_market_avg": log_loss(avg, y), "brier_market_avg": brier(avg, y),
    }
    has_pc = ~np.isnan(fs.pinnacle_close[idx]).any(axis=1)
    if has_pc.sum() > 0:
        pc = fs.pinnacle_close[idx][has_pc]
        out.update({
            "n_events_pinnacle": float(has_pc.sum()),
            "logloss_pinnacle_close": log_loss(pc, y[has_pc]), "brier_pinnacle_close": brier(pc, y[has_pc]),
            "logloss_on_pinnacle_events": log_loss(p[has_pc], y[has_pc]),
        })
    return out


def train_season(fs: FeatureSet, season: str, start: np.datetime64, C: float = DEFAULT_C) -> SeasonVersion | None:
    """The version for ``season``: fit on played events dated before ``start``, scored on the season."""
    train = (fs.dates < start) & (fs.results >= 0)
    n = int(train.sum())
    if n < MIN_TRAIN_EVENTS:
        return None
    X, y = fs.X[train], fs.results[train].astype(int)
    model = OutcomeModel.fit(X, y, C=C)
    data_hash = hashlib.sha256(X.tobytes() + y.tobytes() + np.float64(C).tobytes()).hexdigest()[:32]
    return SeasonVersion(
        season=season, train_start=_as_date(fs.dates[train].min()), train_end=_as_date(start),
        sample_count=n, model=model, metrics={**evaluate(model, fs, fs.seasons == season), "C": C},
        data_hash=data_hash,
    )


def walk_forward(fs: FeatureSet, C: float = DEFAULT_C) -> list[SeasonVersion]:
    """One version per season that has enough earlier data, oldest first."""
    out = []
    for season, start in season_starts(fs):
        v = train_season(fs, season, start, C=C)
        if v is not None:
            out.append(v)
    return out


@dataclass
class ServingOutcome:
    """The serving versions, sorted by ``train_end``: picks the point-in-time version per event."""

    versions: list[tuple[np.datetime64, str, OutcomeModel]]  # (train_end, version id, model)

    def __post_init__(self) -> None:
        self.versions.sort(key=lambda v: v[0])
        self._ends = np.array([v[0] for v in self.versions], dtype="datetime64[D]")

    def predict_rows(self, fs: FeatureSet, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(rows), 3) probabilities and the version index used per row (-1: none, NaN row)."""
        # side="left": the newest version whose train_end is strictly before the event's date.
        which = np.searchsorted(self._ends, fs.dates[rows], side="left") - 1
        probs = np.full((len(rows), 3), np.nan)
        for k in np.unique(which):
            if k < 0:
                continue
            sel = which == k
            probs[sel] = self.versions[k][2].predict_proba(fs.X[rows[sel]])
        return probs, which
