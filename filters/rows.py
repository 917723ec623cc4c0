"""Per-row filters that need nothing beyond the row: status, difficulty band, validity,
usable SFT pairs, stored embedding. Each is a small predicate or a vectorised mask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from filters.base import REASONS, Batch, Filter, PredicateResult, Verdicts, predicate_filter


def status_filter(statuses: Sequence[str]) -> Filter:
    allowed = frozenset(statuses)

    def keep(row: Mapping[str, object]) -> PredicateResult:
        if row["status"] in allowed:
            return True
        # The generator's own reason (parse failure, duplicate of ...) says more than the status.
        why = f": {row['reason']}" if row["reason"] else ""
        return False, "status_excluded", f"status {row['status']!r}{why}"

    return predicate_filter("status", ("status", "reason"), keep)


def difficulty_filter(lo: float, hi: float) -> Filter:
    """Keep solve rates in [lo, hi]: solved always or never teaches nothing (SPARQ's band)."""

    def run(batch: Batch) -> Verdicts:
        sr = batch.frame["solve_rate"].to_numpy(dtype=float, na_value=np.nan)
        out = Verdicts.of(len(sr))
        for i in np.flatnonzero(np.isnan(sr)):
            out.reject(i, "no_solve_rate", "no solve rate (never attempted)")
        for i in np.flatnonzero(sr < lo):
            out.reject(i, "solve_rate_below_band", f"solve rate {sr[i]:.3f} < {lo}")
        for i in np.flatnonzero(sr > hi):
            out.reject(i, "solve_rate_above_band", f"solve rate {sr[i]:.3f} > {hi}")
        return out

    return Filter("difficulty", run)


def _checks(row: Mapping[str, object]) -> PredicateResult:
    # valid is null for rows of runs older than the checks (format 1) and for seeds: those
    # rows were never checked, and the solver-majority filter still applies to them.
    if row["valid"] is not False:
        return True
    failed = str(row["invalid_checks"] or "unknown").split(",")[0]
    code = f"invalid_{failed}" if f"invalid_{failed}" in REASONS else "invalid_other"
    return False, code, str(row["validity_reason"] or "failed a validity check")


def checks_filter() -> Filter:
    """Drop rows the generation's validity checks marked invalid (wrong arithmetic in the
    reference, an answer that is not the solution's result, numbers the problem never gave,
    a verifier that disagrees); the reason names the first failed check."""
    return predicate_filter("checks", ("valid", "invalid_checks", "validity_reason"), _checks)


def _validity(row: Mapping[str, object]) -> PredicateResult:
    agrees = row["reference_agrees"]
    if agrees is True:
        return True
    if agrees is False:
        return False, "reference_disputed", (f"reference answer disagrees with the solver majority "
                                             f"{row['majority_answer']!r} (share {row['majority_share']:.2f})")
    return False, "no_solver_majority", "no solver majority to check the reference answer against"


def validity_filter() -> Filter:
    """Keep rows whose reference answer agrees with the solver majority (a wrong reference
    answer would make the correct-attempt pairs wrong too)."""
    return predicate_filter("validity", ("reference_agrees", "majority_answer", "majority_share"), _validity)


def pairs_filter(sources: Sequence[str]) -> Filter:
    """Keep rows that give at least one SFT pair from the configured sources."""
    student, generator = "student" in sources, "generator" in sources

    def run(batch: Batch) -> Verdicts:
        n = np.zeros(len(batch), dtype=np.int64)
        if student:
            n += batch.frame["n_student"].to_numpy(dtype=np.int64)
        if generator:
            n += batch.frame["has_generator"].to_numpy(dtype=bool)
        wanted = " or ".join(s for s, on in (("correct student attempt", student),
                                               ("generator solution", generator)) if on)
        return Verdicts(np.where(n > 0, None, "no_sft_pair").astype(object),
                        details=np.where(n > 0, None, f"no {wanted}").astype(object))

    return Filter("pairs", run)


def embedding_filter() -> Filter:
    """Rows without a stored embedding cannot be checked for near-duplicates or leaks."""

    def run(batch: Batch) -> Verdicts:
        has = batch.frame["has_embedding"].to_numpy(dtype=bool)
        return Verdicts(np.where(has, None, "no_embedding").astype(object),
                        details=np.where(has, None, "no stored embedding").astype(object))

    return Filter("embedding", run)
