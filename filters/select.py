"""Selection of SFT pairs at a budget, with per-problem and per-cell caps.

A problem (candidate) offers `n_pairs` pairs, numbered 0.. in the configured source order
(correct student attempts by attempt number, then the generator's solution). Every pair
gets a decision: selected, or rejected with the cap or budget that cut it.

Strategies (an order over pairs; caps and the budget are then applied in that order):
- random: a seeded shuffle;
- quality: best quality first (ties broken by a seeded shuffle of the problems);
- diversity: round-robin over cells: every cell's best pair, then every cell's second
  best, ...; first pairs of all of a cell's problems come before anyone's second pair,
  so distinct problems win over extra solutions of one problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Selection:
    problem: np.ndarray  # index of the problem (candidate) of each pair
    pair_no: np.ndarray  # the pair's number within its problem
    selected: np.ndarray  # bool
    reason: np.ndarray  # object: None where selected, else a REASONS code
    detail: np.ndarray  # object: None where selected, else the reason with its value

    @property
    def count(self) -> int:
        return int(self.selected.sum())


def _rank_within(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each element, its 0-based position among its group's elements in `order`."""
    g = groups[order]
    sort = np.argsort(g, kind="stable")
    gs = g[sort]
    starts = np.r_[0, np.flatnonzero(gs[1:] != gs[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(gs)]))
    pos_in_order = np.empty(len(g), dtype=np.int64)
    pos_in_order[sort] = np.arange(len(g)) - run_start
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = pos_in_order
    return rank


def select_pairs(cells: np.ndarray, quality: np.ndarray, n_pairs: np.ndarray, *, strategy: str, budget: int,
                 max_per_cell: int, max_per_problem: int, seed: int) -> Selection:
    """Decide every pair of every problem; `budget`, `max_per_cell`, `max_per_problem`: 0 = none."""
    n_pairs = np.asarray(n_pairs, dtype=np.int64)
    problem = np.repeat(np.arange(len(n_pairs)), n_pairs)
    starts = np.r_[0, np.cumsum(n_pairs)[:-1]] if len(n_pairs) else np.zeros(0, dtype=np.int64)
    pair_no = np.arange(len(problem)) - np.repeat(starts, n_pairs)
    reason = np.full(len(problem), None, dtype=object)
    detail = np.full(len(problem), None, dtype=object)
    if max_per_problem:
        reason[pair_no >= max_per_problem] = "per_problem_cap"
        detail[pair_no >= max_per_problem] = f"per-problem cap ({max_per_problem})"
    live = np.flatnonzero(reason == None)  # noqa: E711 (element-wise on an object array)

    rng = np.random.default_rng(seed)
    shuffle = rng.permutation(len(n_pairs))  # a seeded tie-break per problem
    q, cell, p = quality[problem[live]], cells[problem[live]], pair_no[live]
    if strategy == "random":
        order = rng.permutation(len(live))
    elif strategy == "quality":
        order = np.lexsort((p, shuffle[problem[live]], -q))
    elif strategy == "diversity":
        within = np.lexsort((shuffle[problem[live]], -q, p))  # a cell's queue: first pairs, best first
        rnd = _rank_within(cell, within)
        order = np.lexsort((shuffle[problem[live]], -q, rnd))
    else:
        raise ValueError(f"unknown selection strategy {strategy!r}")
    live = live[order]
    if max_per_cell:
        over = _rank_within(cells[problem[live]], np.arange(len(live))) >= max_per_cell
        reason[live[over]] = "per_cell_cap"
        detail[live[over]] = f"per-cell cap ({max_per_cell})"
        live = live[~over]
    if budget and len(live) > budget:
        reason[live[budget:]] = "over_budget"
        detail[live[budget:]] = f"over budget ({budget})"
        live = live[:budget]
    selected = np.zeros(len(problem), dtype=bool)
    selected[live] = True
    return Selection(problem, pair_no, selected, reason, detail)
