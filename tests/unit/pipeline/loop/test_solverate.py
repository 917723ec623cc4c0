import math

import numpy as np
import pytest

from pipeline.loop.solverate import (
    AdaptiveConfig,
    band_quality,
    decide_in_band,
    in_band,
    is_settled,
    learnability,
    next_round,
    p_in_band,
    quality_function,
)


@pytest.mark.parametrize(
    ("sr", "expected"),
    [(0.0, 0.0), (0.05, 0.0), (0.1, 0.9), (0.5, 0.5), (0.9, 0.1), (0.95, 0.0), (1.0, 0.0)],
)
def test_band_quality_edges_inclusive(sr, expected):
    assert band_quality(sr) == pytest.approx(expected)


@pytest.mark.parametrize(("sr", "expected"), [(0.0, 0.0), (1.0, 0.0), (0.5, 0.25), (0.1, 0.09)])
def test_learnability(sr, expected):
    assert learnability(sr) == pytest.approx(expected)


def test_quality_function_by_name():
    band = quality_function("band", 0.2, 0.8)
    assert band(0.2) == pytest.approx(0.8)
    assert band(0.1) == 0.0
    assert quality_function("learnability", 0.1, 0.9)(0.5) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="'band'.*'learnability'"):
        quality_function("variance", 0.1, 0.9)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_rates_outside_unit_interval_rejected(bad):
    with pytest.raises(ValueError, match=r"sr must be a number in \[0, 1\]"):
        band_quality(bad)


def test_p_in_band_when_decision_already_fixed():
    # n == k_max: nothing left to sample, the decision is a certainty.
    assert p_in_band(0, 16, 16) == 0.0
    assert p_in_band(16, 16, 16) == 0.0
    assert p_in_band(8, 16, 16) == 1.0
    # Edges are inclusive exactly as in the fixed-k rule: 1/10 and 9/10.
    assert p_in_band(1, 10, 10) == 1.0
    assert p_in_band(9, 10, 10) == 1.0
    # 2 right and 2 wrong of 4: the final count is in [2, 14] of 16, i.e.
    # in [0.125, 0.875], so in band whatever happens next.
    assert p_in_band(2, 4, 16) == pytest.approx(1.0)
    # 15 wrong of 16: the final count is at most 1/16 < 0.1.
    assert p_in_band(0, 15, 16) == 0.0


def test_p_in_band_hand_computed():
    # k_max = 2, band [0.5, 1], one failure so far: in band iff the one
    # remaining attempt succeeds, whose predictive probability is the
    # posterior mean (a + c) / (a + b + n) = 1 / 3 for a = b = 1.
    assert p_in_band(0, 1, 2, lo=0.5, hi=1.0, a=1.0, b=1.0) == pytest.approx(1 / 3)
    # Uniform prior, no data, k_max = 1: P(success) = 1/2.
    assert p_in_band(0, 0, 1, lo=1.0, hi=1.0, a=1.0, b=1.0) == pytest.approx(0.5)


def test_settled_after_eight_failures_not_after_one_of_four():
    assert is_settled(0, 8, 16, 0.1, 0.9)
    assert is_settled(8, 8, 16, 0.1, 0.9)  # eight straight successes, symmetric
    assert not is_settled(1, 4, 16, 0.1, 0.9)
    assert not is_settled(0, 4, 16, 0.1, 0.9)
    # 2/4 is settled (in band) for certain, see test above.
    assert is_settled(2, 4, 16, 0.1, 0.9)
    assert decide_in_band(2, 4, 16)
    assert not decide_in_band(0, 8, 16)


def test_min_attempts_and_k_max():
    assert not is_settled(2, 3, 16, 0.1, 0.9, min_attempts=4)
    assert is_settled(0, 16, 16, 0.1, 0.9)
    assert is_settled(0, 2, 2, 0.1, 0.9, min_attempts=4)


def test_jeffreys_prior_is_slower_on_extremes():
    # Documented in the module: with Jeffreys, 8 failures leave p ~ 0.103.
    assert p_in_band(0, 8, 16, a=0.5, b=0.5) == pytest.approx(0.1034, abs=1e-3)
    assert not is_settled(0, 8, 16, 0.1, 0.9, a=0.5, b=0.5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"k_max": 0}, "k_max"),
        ({"round_size": 0}, "round_size"),
        ({"delta": 0.5}, "delta"),
        ({"delta": 0.0}, "delta"),
        ({"prior_a": 0.0}, "prior a"),
        ({"prior_b": -1.0}, "prior b"),
        ({"min_attempts": 17}, "min_attempts"),
        ({"k_max": 4.0}, "k_max"),
    ],
)
def test_config_validation_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AdaptiveConfig(**kwargs)


def test_bad_counts_rejected():
    with pytest.raises(ValueError, match="0 <= c <= n <= k_max"):
        p_in_band(5, 4, 16)
    with pytest.raises(ValueError, match="0 <= c <= n <= k_max"):
        is_settled(0, 17, 16, 0.1, 0.9)


def test_next_round():
    cfg = AdaptiveConfig()
    assert next_round(0, 0, cfg) == 4
    assert next_round(0, 4, cfg) == 4
    assert next_round(0, 8, cfg) == 0
    assert next_round(1, 12, cfg) == 4
    assert next_round(1, 14, AdaptiveConfig(round_size=8)) == 2
    assert next_round(3, 16, cfg) == 0


def _run_adaptive(
    outcomes: np.ndarray, cfg: AdaptiveConfig, lo: float, hi: float
) -> tuple[bool, int]:
    """Consume pre-drawn outcomes in order until settled; return (decision, attempts)."""
    c = n = 0
    while (step := next_round(c, n, cfg, lo, hi)) > 0:
        c += int(outcomes[n : n + step].sum())
        n += step
    return decide_in_band(c, n, cfg.k_max, lo, hi, cfg.prior_a, cfg.prior_b), n


def test_simulated_agreement_and_savings():
    lo, hi = 0.1, 0.9
    cfg = AdaptiveConfig()
    rng = np.random.default_rng(20240611)
    n_problems = 2000
    kind = rng.random(n_problems)
    middle = rng.uniform(0.05, 0.95, n_problems)
    true_sr = np.where(kind < 0.5, 0.0, np.where(kind < 0.75, 1.0, middle))
    # Draw all k_max outcomes up front so both procedures see the same coins.
    outcomes = rng.random((n_problems, cfg.k_max)) < true_sr[:, None]

    agree = 0
    used = 0
    for row in outcomes:
        fixed = in_band(row.sum() / cfg.k_max, lo, hi)
        adaptive, n = _run_adaptive(row, cfg, lo, hi)
        agree += adaptive == fixed
        used += n
    agreement = agree / n_problems
    saved = 1.0 - used / (n_problems * cfg.k_max)
    print(f"\nadaptive vs fixed k={cfg.k_max}: agreement={agreement:.4f} saved={saved:.3f}")
    assert agreement >= 0.95
    assert saved >= 0.40
