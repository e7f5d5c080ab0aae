"""The strategy model: a strategy's out-of-sample backtest metrics from its parameters alone.

Features are the strategy's parameters only (``edgeloop.backtester.strategy.Strategy``, canonicalised:
defaults filled in, aliases resolved), encoded as numbers. The labels are the backtest's
outcome: ``backtest_score`` (``edgeloop.core.scoring``), ROI, max drawdown and win rate. No
outcome is ever an input: a model given its own label as a feature learns to copy it.

One more label, ``shrunk_score``, is what GenerateStrategy searches on: the backtest score
shrunk toward the typical score by the number of bets it rests on,

    shrunk = (n·score + k·m) / (n + k),   n = total bets, k = ``SHRINK_BETS``, m = median score

(``edgeloop.core.evidence.shrink``). A strategy with 3 lucky winning bets scores near 1.0
and proves nothing; shrunk it is a typical strategy. A search that chases raw scores collapses
onto such strategies, too small to ever be activated (``min_bets_for_activation``).
EvaluateStrategy's confidence stays on the raw ``backtest_score`` label.

Model: extremely randomised trees (multi-output, bootstrap), stored as plain arrays (no
pickle) and evaluated by a vectorised walk of all trees at once. The spread of the trees'
predictions is the model's uncertainty about a parameter set (large where it has seen few
similar strategies); the held-out residual spread is added to it for the confidence.

EvaluateStrategy's confidence (docs/ml-service.md):

    confidence = Φ((μ − m) / sqrt(σ_trees² + σ_residual²))

the probability, under a normal approximation, that the strategy's out-of-sample score beats
``m``, the median score of the strategies the model was trained on. 0.5 = a typical strategy;
near 1 = clearly better than most, with the model sure about it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import ndtr

from edgeloop.backtester.strategy import Strategy, is_closing
from edgeloop.core.errors import InvalidRequest, InvalidStrategy, ModelArtifactUnreadable
from edgeloop.core.evidence import SHRINK_BETS, shrink
from edgeloop.mlservice.artifacts import read_arrays

MODEL_NAME = "strategy"
TARGETS = ("backtest_score", "roi", "max_drawdown", "win_rate", "shrunk_score")
PRICE_SOURCES = ("MAX", "AVG", "PS", "B365", "BFE")  # one-hot; anything else is "other"
PARAM_FIELDS = tuple(f for f in Strategy.__dataclass_fields__ if f not in ("name", "strategy_id"))
FEATURE_NAMES = (
    "min_edge", "min_confidence", "log_min_odds", "log_max_odds", "kelly", "kelly_fraction",
    "max_stake_fraction", "sel_home", "sel_draw", "sel_away", "lay", "one_bet_per_event", "model_probabilities",
    "closing_price", *(f"price_{s}" for s in PRICE_SOURCES), "price_other",
)
_PARAM_FIELD_SET = frozenset(PARAM_FIELDS)


def canonical_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The full parameter set the backtester would run (defaults filled, aliases resolved).

    Keys the backtester does not know (``leagues``, a producer's extras) are context, not
    parameters, and are dropped. Invalid values raise ``InvalidRequest``."""
    known = {k: v for k, v in params.items() if k in _PARAM_FIELD_SET}
    try:
        # A fixed strategy_id skips the id hashing; the fields are read directly because
        # Strategy.params() (dataclasses.asdict) would dominate retraining on 100k samples.
        strategy = Strategy.from_mapping({**known, "strategy_id": "canonical"})
    except InvalidStrategy as exc:
        raise InvalidRequest(str(exc)) from None
    out = {f: getattr(strategy, f) for f in PARAM_FIELDS}
    out["selections"] = list(strategy.selections)
    return out


def params_fingerprint(params: Mapping[str, Any]) -> str:
    """sha256 of the canonical parameters: the same strategy always has the same fingerprint."""
    try:
        canonical: Mapping[str, Any] = canonical_params(params)
    except InvalidRequest:
        canonical = params  # a producer's own parameter language: fingerprint it as sent
    return fingerprint_of_canonical(canonical)


# json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str), without building
# an encoder per call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def fingerprint_of_canonical(canonical: Mapping[str, Any]) -> str:
    """``params_fingerprint`` of parameters that are canonical already (skips re-validating)."""
    return hashlib.sha256(_CANONICAL_JSON(canonical).encode()).hexdigest()


_INVALID = ""  # remembered for parameters the backtester refuses (a fingerprint is never empty)


class FingerprintMemo:
    """``params_fingerprint``, remembered: a strategy backtested on many windows sends the same
    parameters again and again, and fingerprinting them (the backtester's validation, then
    sha256 of canonical JSON) is the dearest step of storing its feedback.

    The canonical fingerprint depends only on the parameters the backtester knows, so it is
    remembered by those: the same strategy with other ``leagues`` or ``model_versions`` is a
    hit. Parameters it refuses are fingerprinted as sent, remembered by all of them. Keys are
    ``repr`` of the parameters, which tells apart every two JSON values that differ (``1``,
    ``1.0`` and ``true``; ``0.0`` and ``-0.0``); the same values in another key order are only
    a miss. Bounded: at most ``kept`` keys of at most ``max_key`` characters each (a few MB);
    a full memo starts again empty (one dict operation, so threads may share it)."""

    def __init__(self, kept: int = 16_384, max_key: int = 2_048) -> None:
        self.kept = kept
        self.max_key = max_key
        self._canonical: dict[str, str] = {}  # known params → fingerprint, or _INVALID
        self._as_sent: dict[str, str] = {}

    def of(self, params: Mapping[str, Any]) -> str:
        known = {k: v for k, v in params.items() if k in _PARAM_FIELD_SET}
        key = repr(known)
        fingerprint = self._canonical.get(key)
        if fingerprint is None:
            try:
                fingerprint = fingerprint_of_canonical(canonical_params(known))
            except InvalidRequest:
                fingerprint = _INVALID
            self._remember(self._canonical, key, fingerprint)
        if fingerprint:  # not _INVALID
            return fingerprint
        key = repr(params)  # a producer's own parameter language: fingerprinted as sent
        fingerprint = self._as_sent.get(key)
        if fingerprint is None:
            fingerprint = fingerprint_of_canonical(params)
            self._remember(self._as_sent, key, fingerprint)
        return fingerprint

    def _remember(self, known: dict[str, str], key: str, fingerprint: str) -> None:
        if len(key) <= self.max_key:
            if len(known) >= self.kept:
                known.clear()
            known[key] = fingerprint


def encode(params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(n, len(FEATURE_NAMES)) features of canonical parameter sets."""
    X = np.zeros((len(params_list), len(FEATURE_NAMES)))
    for i, p in enumerate(params_list):
        sels = set(p["selections"])
        source = p["price_source"]
        X[i, :14] = (
            p["min_edge"], p["min_confidence"], math.log(p["min_odds"]), math.log(min(p["max_odds"], 1000.0)),
            p["staking"] == "kelly", p["kelly_fraction"] if p["staking"] == "kelly" else 0.0,
            p["max_stake_fraction"] if p["staking"] == "kelly" else 0.0,
            "home" in sels, "draw" in sels, "away" in sels, p["side"] == "lay", bool(p["one_bet_per_event"]),
            p["probability_source"] == "model", is_closing(source),
        )
        base = source[:-1] if is_closing(source) else source
        X[i, 14 + (PRICE_SOURCES.index(base) if base in PRICE_SOURCES else len(PRICE_SOURCES))] = 1.0
    return X


def shrunk_scores(scores: np.ndarray, bets: np.ndarray, k: float = SHRINK_BETS) -> np.ndarray:
    """Backtest scores shrunk toward their median by the number of bets: (n·s + k·m) / (n + k)."""
    scores, bets = np.asarray(scores, dtype=float), np.maximum(np.asarray(bets, dtype=float), 0.0)
    if len(scores) == 0:
        return scores
    return shrink(scores, bets, float(np.median(scores)), k)


def training_labels(scores: Sequence[float], metrics: Sequence[Mapping[str, float]]) -> np.ndarray:
    """(n, len(TARGETS)) labels of a set of feedback samples: each sample's backtest score and
    metrics (``roi``, ``max_drawdown``, ``win_rate``, ``total_bets``; a missing one counts as 0).
    The shrunk score's prior is the set's median score, so label a whole training set at once."""
    raw = np.array([[s, m.get("roi", 0.0), m.get("max_drawdown", 0.0), m.get("win_rate", 0.0)]
                    for s, m in zip(scores, metrics)], dtype=float).reshape(-1, 4)
    bets = np.array([m.get("total_bets", 0.0) for m in metrics], dtype=float)
    return np.column_stack([raw, shrunk_scores(raw[:, 0], bets)])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); NaN when either side is constant."""
    # Here, not at the top: scipy.stats takes over a second to import and only training needs it.
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


@dataclass(frozen=True)
class TreeEnsemble:
    """Regression trees as flat arrays: node i of tree t is row ``offsets[t] + i``."""

    left: np.ndarray  # (nodes,) int32, global index, -1 at a leaf
    right: np.ndarray
    feature: np.ndarray  # (nodes,) int32
    threshold: np.ndarray  # (nodes,) float64
    value: np.ndarray  # (nodes, outputs)
    roots: np.ndarray  # (trees,) global index of each root
    depth: int

    @classmethod
    def fit(cls, X: np.ndarray, Y: np.ndarray, *, n_trees: int = 100, seed: int = 0,
            max_samples: int = 20_000) -> tuple["TreeEnsemble", np.ndarray]:
        """The trees, and which rows each tree was fitted on: (trees, n) booleans."""
        # Here, not at the top: scikit-learn takes seconds to import; a service that only
        # serves loads the fitted trees without it.
        from sklearn.ensemble import ExtraTreesRegressor

        n = len(X)
        per_tree = min(n, max_samples)
        # Bootstrap (so the trees disagree where data is thin) of at most max_samples rows
        # each: 100k samples train in seconds, and more rows per tree would add little. Leaves
        # grow with the data so a tree stays at a few thousand nodes (the artifact small).
        forest = ExtraTreesRegressor(
            n_estimators=n_trees, min_samples_leaf=max(3, per_tree // 2000), max_features=0.8, bootstrap=True,
            max_samples=per_tree / n if n > 0 else None, random_state=seed, n_jobs=1,
        ).fit(X, Y)
        parts, roots, offset, depth = [], [], 0, 0
        for est in forest.estimators_:
            t = est.tree_
            leaf = t.children_left < 0
            parts.append((np.where(leaf, -1, t.children_left + offset), np.where(leaf, -1, t.children_right + offset),
                          np.where(leaf, 0, t.feature), t.threshold, t.value[:, :, 0]))
            roots.append(offset)
            offset += t.node_count
            depth = max(depth, t.max_depth)
        cat = lambda k: np.concatenate([p[k] for p in parts])  # noqa: E731
        in_bag = np.zeros((n_trees, n), dtype=bool)
        for t, rows in enumerate(forest.estimators_samples_):
            in_bag[t, rows] = True
        return cls(left=cat(0).astype(np.int32), right=cat(1).astype(np.int32), feature=cat(2).astype(np.int32),
                   threshold=cat(3).astype(np.float64), value=cat(4).astype(np.float64),
                   roots=np.array(roots, dtype=np.int32), depth=int(depth)), in_bag

    def predict_trees(self, X: np.ndarray) -> np.ndarray:
        """(trees, n, outputs): every tree's prediction, walking all trees level by level."""
        return self.value[self.leaves(X)]

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """(trees, n): the leaf each row reaches in each tree. Level by level, only the (tree,
        row) pairs still at an inner node are walked on: a path ends at its leaf, most well
        before the deepest one (a third less work than walking every pair to the full depth)."""
        n, width = X.shape
        left, right, feature, roots = self._index_arrays
        node = np.repeat(roots, n)  # tree by tree, row by row
        row_start = np.tile(np.arange(n, dtype=np.intp) * width, len(self.roots))  # of each pair's row in X.flat
        values = np.ascontiguousarray(X, dtype=np.float64).ravel()
        walking = np.flatnonzero(left[node] >= 0)
        at = node[walking]
        for _ in range(self.depth):
            if not walking.size:
                break
            at = np.where(values[row_start[walking] + feature[at]] <= self.threshold[at], left[at], right[at])
            node[walking] = at
            inner = left[at] >= 0
            walking, at = walking[inner], at[inner]
        return node.reshape(len(self.roots), n)

    @functools.cached_property
    def _index_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """left, right, feature and roots as numpy's index type, converted once: indexing with
        the stored int32 is slower on a large walk, and converting ~260,000 nodes on every call
        cost a single estimate ~0.15 ms."""
        return tuple(a.astype(np.intp) for a in (self.left, self.right, self.feature, self.roots))  # type: ignore[return-value]

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": v for k, v in (
            ("left", self.left), ("right", self.right), ("feature", self.feature), ("threshold", self.threshold),
            ("value", self.value), ("roots", self.roots), ("depth", np.array(self.depth)))}

    @classmethod
    def from_arrays(cls, z: Mapping[str, np.ndarray], prefix: str) -> "TreeEnsemble":
        return cls(left=z[f"{prefix}left"], right=z[f"{prefix}right"], feature=z[f"{prefix}feature"],
                   threshold=z[f"{prefix}threshold"], value=z[f"{prefix}value"], roots=z[f"{prefix}roots"],
                   depth=int(z[f"{prefix}depth"]))


MIN_OUT_OF_BAG_TREES = 5  # fewer trees that never saw a strategy: fall back to all trees


class TrainingRows:
    """Which strategies the model was trained on, and which trees saw each of them.

    A tree fitted on a strategy's own (in-sample) score partly predicts that score back: with
    leaves of a few samples, a strategy with a lucky backtest gets a lucky estimate, and the
    composite score (confidence + backtest score) would count the same luck twice. For a
    strategy it was trained on, the model therefore answers from the trees whose bootstrap
    left it out (out-of-bag, about a third of them): an estimate of how such parameters do
    elsewhere, not a memory of how this one did.
    """

    def __init__(self, keys: np.ndarray, in_bag: np.ndarray) -> None:
        self.keys = np.asarray(keys, dtype=np.uint64)  # (n,) first 64 bits of each row's fingerprint
        self.in_bag = np.asarray(in_bag, dtype=bool)  # (trees, n)
        self._order = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[self._order]

    @staticmethod
    def key(fingerprint: str) -> int:
        return int(fingerprint[:16], 16)

    @classmethod
    def of(cls, fingerprints: Sequence[str], in_bag: np.ndarray) -> "TrainingRows":
        return cls(np.array([cls.key(f) for f in fingerprints], dtype=np.uint64), in_bag)

    def out_of_bag(self, fingerprints: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the queries the model trained on, (trees, k): the trees that saw none
        of each one's rows), vectorised: held-out evaluation asks for ~20k at once."""
        q = np.array([self.key(f) for f in fingerprints], dtype=np.uint64)
        lo, hi = np.searchsorted(self._sorted, q, "left"), np.searchsorted(self._sorted, q, "right")
        idx = np.flatnonzero(hi > lo)
        seen_by = self.in_bag[:, self._order[lo[idx]]]  # (trees, k): by each one's first row
        for j in np.flatnonzero(hi[idx] - lo[idx] > 1):  # the same strategy in several samples: rare
            i = idx[j]
            seen_by[:, j] = self.in_bag[:, self._order[lo[i]:hi[i]]].any(axis=1)
        unseen = ~seen_by
        keep = unseen.sum(axis=0) >= MIN_OUT_OF_BAG_TREES
        return idx[keep], unseen[:, keep]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"seen_keys": self.keys, "seen_in_bag": np.packbits(self.in_bag, axis=1),
                "seen_n": np.array(self.in_bag.shape[1])}

    @classmethod
    def from_arrays(cls, z: Mapping[str, np.ndarray]) -> "TrainingRows | None":
        if "seen_keys" not in z:
            return None  # an artifact from before out-of-bag estimates
        n = int(z["seen_n"])
        return cls(z["seen_keys"], np.unpackbits(z["seen_in_bag"], axis=1, count=n).astype(bool))


@dataclass(frozen=True)
class Estimate:
    mean: np.ndarray  # (n, len(targets))
    spread: np.ndarray  # (n, len(targets)): std across trees
    confidence: np.ndarray  # (n,)
    targets: tuple[str, ...] = TARGETS

    def of(self, target: str) -> np.ndarray:
        return self.mean[:, self.targets.index(target)]

    def spread_of(self, target: str) -> np.ndarray:
        return self.spread[:, self.targets.index(target)]


@dataclass(frozen=True)
class StrategyModel:
    trees: TreeEnsemble
    residual_std: np.ndarray  # (len(targets),) held-out (or training) residual spread
    reference_score: float  # median training backtest score: confidence 0.5
    targets: tuple[str, ...] = TARGETS  # the labels' names; an older artifact may lack the last ones
    seen: TrainingRows | None = None  # the training strategies (None: an older artifact)

    @classmethod
    def fit(cls, params_list: Sequence[Mapping[str, Any]], Y: np.ndarray, seed: int = 0,
            targets: Sequence[str] = TARGETS, fingerprints: Sequence[str] | None = None) -> "StrategyModel":
        """``params_list`` canonical, ``Y`` (n, len(targets)) labels (``training_labels``);
        ``targets`` a prefix of ``TARGETS`` (the first, ``backtest_score``, gives the confidence);
        ``fingerprints`` the params' ``params_fingerprint`` when the caller has them (else computed)."""
        targets = tuple(targets)
        if not targets or targets != TARGETS[:len(targets)]:
            raise ValueError(f"targets must be a prefix of {TARGETS}, got {targets}")
        if np.shape(Y)[1:] != (len(targets),):
            raise ValueError(f"labels must have {len(targets)} columns ({', '.join(targets)}), got shape {np.shape(Y)}")
        if len(params_list) < 10:
            raise ValueError(f"the strategy model needs at least 10 feedback samples, has {len(params_list)}")
        X = encode(params_list)
        trees, in_bag = TreeEnsemble.fit(X, Y, seed=seed)
        if fingerprints is None:
            fingerprints = [fingerprint_of_canonical(p) for p in params_list]
        # In-sample residuals understate the error; the trainer replaces them with held-out
        # ones. A few thousand rows are plenty for a spread.
        few = slice(0, 5000)
        fitted = trees.predict_trees(X[few]).mean(axis=0)
        return cls(trees=trees, residual_std=np.std(Y[few] - fitted, axis=0), reference_score=float(np.median(Y[:, 0])),
                   targets=targets, seen=TrainingRows.of(fingerprints, in_bag))

    def with_residual_std(self, residual_std: np.ndarray) -> "StrategyModel":
        return StrategyModel(self.trees, np.asarray(residual_std, dtype=float), self.reference_score, self.targets,
                             self.seen)

    def estimate(self, params_list: Sequence[Mapping[str, Any]], fingerprints: Sequence[str] | None = None) -> Estimate:
        """Estimates for canonical parameter sets; out-of-bag for those the model trained on
        (``TrainingRows``). ``fingerprints``: theirs, when the caller has them already."""
        per_tree = self.trees.predict_trees(encode(params_list))
        mean, spread = per_tree.mean(axis=0), per_tree.std(axis=0)
        if self.seen is not None and len(params_list):
            if fingerprints is None:
                fingerprints = [fingerprint_of_canonical(p) for p in params_list]
            idx, unseen = self.seen.out_of_bag(fingerprints)
            if len(idx):
                w = unseen[:, :, None]  # (trees, k, 1): the trees each may be estimated by
                of = per_tree[:, idx, :]
                m = (of * w).sum(axis=0) / w.sum(axis=0)
                mean[idx], spread[idx] = m, np.sqrt((((of - m) ** 2) * w).sum(axis=0) / w.sum(axis=0))
        sigma = np.sqrt(spread[:, 0] ** 2 + self.residual_std[0] ** 2) + 1e-9
        return Estimate(mean=mean, spread=spread, confidence=ndtr((mean[:, 0] - self.reference_score) / sigma),
                        targets=self.targets)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        # by name, all arrays (numpy's stubs would match a ** mapping against allow_pickle)
        arrays: dict[str, Any] = {
            "residual_std": self.residual_std, "reference_score": np.array(self.reference_score),
            "feature_names": np.array(FEATURE_NAMES, dtype=str), "targets": np.array(self.targets, dtype=str),
            **self.trees.arrays("t_"), **(self.seen.arrays() if self.seen is not None else {})}
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, version: str = "") -> "StrategyModel":
        """The model stored as ``data`` (``to_bytes``); ``version`` names it in errors. Bytes this
        code cannot read as one (empty, truncated, corrupt, other features) raise
        ``ModelArtifactUnreadable`` (``artifacts.read_arrays``)."""
        arrays = read_arrays(data, MODEL_NAME, version, FEATURE_NAMES)
        targets = tuple(str(x) for x in arrays["targets"])
        if targets != TARGETS[:len(targets)]:
            raise ModelArtifactUnreadable(f"{arrays.what}: artifact has unknown targets {targets}")
        return cls(trees=TreeEnsemble.from_arrays(arrays, "t_"), residual_std=arrays["residual_std"],
                   reference_score=float(arrays["reference_score"]), targets=targets,
                   seen=TrainingRows.from_arrays(arrays))
