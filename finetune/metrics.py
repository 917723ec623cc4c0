"""pass@k and its 95% confidence interval.

pass@k per problem is the unbiased estimator of Chen et al. (2021), `1 - C(n-c, k) / C(n, k)`
for c correct of n samples (k = 1 gives c / n); the score is its mean over problems.

The interval is a percentile bootstrap over problems: problems are resampled with
replacement (the n samples of a problem stay together, since they are correlated), the mean
recomputed, and the 2.5th/97.5th percentiles taken. Problems are the unit that varies between
eval sets, and the bootstrap needs no normality of per-problem scores, which at n = 1 are
0/1 and at larger n bunch near 0 and 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n with c correct, is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass(frozen=True)
class Estimate:
    estimate: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "ci_lo": self.lo, "ci_hi": self.hi}


def bootstrap_mean(scores: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of per-problem scores with a percentile-bootstrap interval over problems."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap_mean: no scores")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    est = float(x.mean())
    # The bootstrap distribution of a mean is centred on the sample mean, so the interval holds
    # it; min/max only guard against float rounding at the edges (all scores equal).
    return Estimate(est, float(min(lo, est)), float(max(hi, est)))


def pass_at_k_estimate(n: int, correct: Sequence[int], k: int, *, resamples: int = 2000, seed: int = 0) -> Estimate:
    """pass@k over problems (correct[i] of n samples of problem i) with its bootstrap interval."""
    return bootstrap_mean([pass_at_k(n, c, k) for c in correct], resamples=resamples, seed=seed)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-problem score differences (a - b) on the same problems."""

    difference: float
    lo: float
    hi: float
    p_value: float  # two-sided, paired sign-flip permutation test
    problems: int

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"difference": self.difference, "ci_lo": self.lo, "ci_hi": self.hi, "p_value": self.p_value,
                "problems": self.problems, "significant_at_0.05": self.significant}


def paired_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 10000,
                      seed: int = 0) -> PairedDifference:
    """Compare two models scored on the same problems (per-problem pass@1 of each).

    Pairing matters: problems vary far more in difficulty than the models do, and the
    per-problem differences remove that shared part. The interval is the percentile
    bootstrap over problems of the mean difference; the p-value is a sign-flip permutation
    test (under "no difference" each problem's two scores are exchangeable, so the sign of
    its difference is a coin flip), two-sided, with the observed statistic counted in.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0 or len(a) != len(b):
        raise ValueError(f"paired_difference: need two equal, non-empty score lists, got {len(a)} and {len(b)}")
    ci = bootstrap_mean(d, resamples=resamples, seed=seed)
    rng = np.random.default_rng(seed + 1)
    flips = rng.choice(np.array([-1.0, 1.0]), size=(resamples, d.size))
    null = np.abs((flips * d).mean(axis=1))
    observed = abs(float(d.mean()))
    # A small tolerance: sums of the same floats in another order differ in the last bit.
    extreme = int(np.count_nonzero(null >= observed - 1e-12))
    p = (extreme + 1) / (resamples + 1)
    return PairedDifference(ci.estimate, ci.lo, ci.hi, min(1.0, p), int(d.size))
