"""Solve rates, problem-quality functions and the adaptive stopping rule.

A generated problem is kept when a solver's solve rate ``sr`` lies in a
band ``[lo, hi]`` (hard, but not impossible or trivially easy). The
reference procedure estimates ``sr`` from a fixed ``k_max`` attempts
(SPARQ-style, k = 16): the problem is "in band" iff
``lo <= c_final / k_max <= hi`` where ``c_final`` is the number of correct
attempts out of ``k_max``.

Adaptive rule
-------------
Most generated problems are solved always or never, so most of those 16
attempts are wasted. We sample in rounds and stop as soon as the *fixed-k
decision* is predictable. After ``n`` attempts with ``c`` correct, a
Beta(a, b) prior on ``sr`` gives the posterior Beta(a + c, b + n - c); the
number of successes in the remaining ``k_max - n`` attempts is then
Beta-binomial. ``p_in_band`` is the predictive probability that the full
``k_max`` attempts would put the problem in band; the decision is settled
when that probability is ``<= delta`` or ``>= 1 - delta`` (after at least
``min_attempts``), or trivially when ``n == k_max``.

Why predictive rather than a credible interval on ``sr``: the question we
must answer is "would 16 attempts put this problem in band?", not "is sr
below 0.1?". A one-sided 95% credible bound needs 28 straight failures
under a uniform prior (18 under Jeffreys) before it is confident that
sr < 0.1, which saves nothing against k = 16. It also ignores the
discreteness of the fixed-k estimate: 2 successes in 4 attempts already
guarantee 2 <= c_final <= 14, i.e. 0.125 <= c_final/16 <= 0.875, which is
in band for certain, and the predictive rule stops there while a credible
interval on sr would keep sampling.

Prior: we default to Beta(0.1, 0.1) rather than Jeffreys Beta(0.5, 0.5).
Both are U-shaped, but Jeffreys puts only 41% of its mass on sr < 0.1 or
sr > 0.9, while SPARQ observes that *most* generated problems are solved
always or never; Beta(0.1, 0.1) puts 81% there. With Jeffreys and
delta = 0.05, 8 straight failures leave p_in_band = 0.103 (two or more
successes in the 8 remaining attempts are still plausible), so with
rounds of 4 the extremes only settle after 12 attempts and the simulated
saving against k = 16 is ~30%; with Beta(0.1, 0.1) they settle after 8 and
the saving is ~50% at ~98.6% agreement with the fixed-k decision (see
tests/unit/pipeline/loop/test_solverate.py for the simulation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import betabinom

DEFAULT_PRIOR = 0.1
"""Default Beta prior parameter (a = b); see the module docstring for why."""

QUALITY_FUNCTIONS = ("band", "learnability")


def in_band(sr: float, lo: float = 0.1, hi: float = 0.9) -> bool:
    """Whether a solve rate is in the (inclusive) band ``[lo, hi]``.

    Shared by ``band_quality`` and ``p_in_band`` so that the quality
    function and the stopping rule agree on the edges exactly.
    """
    return lo <= sr <= hi


def band_quality(sr: float, lo: float = 0.1, hi: float = 0.9) -> float:
    """``1 - sr`` inside the band ``[lo, hi]`` (harder is better), else 0."""
    _check_rate("sr", sr)
    _check_band(lo, hi)
    return 1.0 - sr if in_band(sr, lo, hi) else 0.0


def learnability(sr: float) -> float:
    """``sr * (1 - sr)``: the Bernoulli variance, largest at sr = 0.5."""
    _check_rate("sr", sr)
    return sr * (1.0 - sr)


def quality_function(name: str, lo: float = 0.1, hi: float = 0.9) -> Callable[[float], float]:
    """The quality function called ``name``: "band" (uses lo/hi) or "learnability"."""
    if name == "band":
        _check_band(lo, hi)

        def band(sr: float) -> float:
            return band_quality(sr, lo, hi)

        return band
    if name == "learnability":
        return learnability
    raise ValueError(f"unknown quality function {name!r}; expected one of {QUALITY_FUNCTIONS}")


def p_in_band(
    c: int,
    n: int,
    k_max: int,
    lo: float = 0.1,
    hi: float = 0.9,
    a: float = DEFAULT_PRIOR,
    b: float = DEFAULT_PRIOR,
) -> float:
    """Predictive probability that ``k_max`` attempts would put the problem in band.

    ``c`` of the first ``n`` attempts were correct. The remaining
    ``k_max - n`` outcomes are Beta-binomial under the Beta(a + c, b + n - c)
    posterior; we sum the probability of the final counts ``c_final`` with
    ``lo <= c_final / k_max <= hi`` (the same expression the fixed-k
    decision uses, so edge cases like 0.1 * 10 agree exactly).
    """
    _check_counts(c, n, k_max)
    _check_band(lo, hi)
    _check_prior(a, b)
    remaining = k_max - n
    future = np.arange(remaining + 1)
    final_rate = (c + future) / k_max
    mask = np.array([in_band(float(r), lo, hi) for r in final_rate])
    pmf = betabinom.pmf(future, remaining, a + c, b + n - c)
    # Clamp: summing pmf values can overshoot 1 by a rounding error.
    return float(min(1.0, max(0.0, pmf[mask].sum())))


def decide_in_band(
    c: int,
    n: int,
    k_max: int,
    lo: float = 0.1,
    hi: float = 0.9,
    a: float = DEFAULT_PRIOR,
    b: float = DEFAULT_PRIOR,
) -> bool:
    """The in-band decision to act on once sampling stops.

    The most probable fixed-k decision; exact when ``n == k_max``. Use this
    rather than ``lo <= c/n <= hi`` after an early stop so the decision is
    the one the stopping rule was confident about (e.g. 1/12 correct is
    below the band as a rate, but 16 attempts might still reach 2/16).
    """
    return p_in_band(c, n, k_max, lo, hi, a, b) >= 0.5


def is_settled(
    c: int,
    n: int,
    k_max: int,
    lo: float = 0.1,
    hi: float = 0.9,
    delta: float = 0.05,
    a: float = DEFAULT_PRIOR,
    b: float = DEFAULT_PRIOR,
    min_attempts: int = 4,
) -> bool:
    """Whether more attempts are unlikely to change the fixed-k in-band decision.

    True when all ``k_max`` attempts are in, or when at least
    ``min_attempts`` are and ``p_in_band`` is within ``delta`` of 0 or 1.
    ``min_attempts`` guards against stopping on one or two lucky outcomes
    when the prior is strongly U-shaped.
    """
    _check_counts(c, n, k_max)
    _check_delta(delta)
    if n >= k_max:
        return True
    if n < min_attempts:
        return False
    p = p_in_band(c, n, k_max, lo, hi, a, b)
    return p <= delta or p >= 1.0 - delta


@dataclass(frozen=True)
class AdaptiveConfig:
    """Settings of the adaptive sampling rule (see the module docstring)."""

    k_max: int = 16
    round_size: int = 4
    delta: float = 0.05
    prior_a: float = DEFAULT_PRIOR
    prior_b: float = DEFAULT_PRIOR
    min_attempts: int = 4

    def __post_init__(self) -> None:
        _check_positive_int("k_max", self.k_max)
        _check_positive_int("round_size", self.round_size)
        _check_delta(self.delta)
        _check_prior(self.prior_a, self.prior_b)
        if not _is_int(self.min_attempts) or not 0 <= self.min_attempts <= self.k_max:
            raise ValueError(
                f"min_attempts must be an int in [0, k_max={self.k_max}], got {self.min_attempts!r}"
            )


def next_round(c: int, n: int, cfg: AdaptiveConfig, lo: float = 0.1, hi: float = 0.9) -> int:
    """How many attempts to request next: 0 once settled, else a round (capped at k_max)."""
    settled = is_settled(
        c,
        n,
        cfg.k_max,
        lo,
        hi,
        delta=cfg.delta,
        a=cfg.prior_a,
        b=cfg.prior_b,
        min_attempts=cfg.min_attempts,
    )
    return 0 if settled else min(cfg.round_size, cfg.k_max - n)


# --- validation -----------------------------------------------------------------


def _is_int(x: object) -> bool:
    # bool is an int subclass, but True attempts is always a caller bug.
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _check_positive_int(name: str, x: object) -> None:
    if not _is_int(x) or x < 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be an int >= 1, got {x!r}")


def _check_rate(name: str, x: float) -> None:
    if not (isinstance(x, int | float | np.floating) and 0.0 <= x <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {x!r}")


def _check_band(lo: float, hi: float) -> None:
    _check_rate("lo", lo)
    _check_rate("hi", hi)
    if lo > hi:
        raise ValueError(f"band must have lo <= hi, got lo={lo!r} > hi={hi!r}")


def _check_counts(c: int, n: int, k_max: int) -> None:
    _check_positive_int("k_max", k_max)
    if not (_is_int(c) and _is_int(n) and 0 <= c <= n <= k_max):
        raise ValueError(
            f"counts must be ints with 0 <= c <= n <= k_max, got c={c!r}, n={n!r}, k_max={k_max!r}"
        )


def _check_prior(a: float, b: float) -> None:
    for name, x in (("prior a", a), ("prior b", b)):
        if not (isinstance(x, int | float | np.floating) and math.isfinite(x) and x > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {x!r}")


def _check_delta(delta: float) -> None:
    if not (isinstance(delta, int | float | np.floating) and 0.0 < delta < 0.5):
        raise ValueError(f"delta must be a number in (0, 0.5), got {delta!r}")
