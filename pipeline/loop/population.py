"""The population a campaign draws parents from: every committed row that could be a parent
(seeds and ok candidates with quality > 0), what parent selection needs of them, the
problem ids already taken, and the operators' counts; built as steps commit and rebuilt
from the shards on resume. `rederive_archive` is the archive as a function of the same rows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from archives import Archive, CVTArchive, load_archive
from pipeline.config import Config
from pipeline.loop.candidate import Parent, archive_eligible
from pipeline.loop.operators import Counts, OperatorSpec, choose_operators, operator_counts, update_counts
from pipeline.loop.selection import PoolRow, make_sampler
from pipeline.placement.archiving import table_descriptors
from pipeline.placement.niche import NicheView, target_text
from pipeline.store.records import Candidate, Status, since_rescore
from pipeline.store.storage import RunDir, RunError

# Statuses whose problem id is taken: a later copy of the problem is a duplicate.
KNOWN = Status.OWNERS


def rederive_archive(base: np.ndarray | Archive, candidates: pa.Table) -> Archive:
    """The archive as a pure function of the committed candidates (see module doc).

    `base` gives the kind and parameters: CVT centroids, or an archive (its elites are
    ignored: `new_empty()` keeps the centroids, the novelty radius, the skill vocabulary).
    """
    archive = CVTArchive(centroids=base) if isinstance(base, np.ndarray) else base.new_empty()
    table = since_rescore(candidates).sort_by([("step", "ascending"), ("slot", "ascending")])
    mask = pc.or_(pc.equal(table["status"], Status.SEED),
                  pc.and_(pc.is_in(table["status"], pa.array(Status.SCORED)), pc.greater(table["quality"], 0.0)))
    table = table.filter(mask)
    if table.num_rows:
        archive.add(table["id"].to_pylist(), table_descriptors(archive, table), table["quality"].to_pylist(),
                    steps=table["step"].to_pylist())
    return archive


class Population:
    """The parent pool of one campaign (see the module doc)."""

    def __init__(self) -> None:
        self.pool: dict[str, Parent] = {}  # every archive-eligible row, by candidate id
        self.rows: dict[str, PoolRow] = {}  # what selection needs of the same rows
        self.seen: set[str] = set()  # problem ids of committed seeds and ok candidates
        self.op_counts: dict[str, Counts] = {}  # attempts / archived per operator (bandit)

    def taken(self, pid: str) -> bool:
        """Whether a committed row already has this problem id."""
        return pid in self.seen

    def remember(self, rows: list[Candidate]) -> None:
        """Add a committed step's rows."""
        for r in rows:
            if r.status in KNOWN and r.problem_id:
                self.seen.add(r.problem_id)
            if r.status == Status.RESCORED:
                self._drop(r.parent_id)
            if archive_eligible(r.status, r.quality):
                self.pool[r.id] = Parent(r.id, r.problem or "", r.solution or "", r.answer or "",
                                         r.depth)
                self.rows[r.id] = PoolRow(r.id, r.quality, r.cell, r.status == Status.SEED, bool(r.disputed))
        update_counts(self.op_counts, rows)  # (it counts generated rows only: step > 0)

    def _drop(self, cid: str | None) -> None:
        """A re-scored row replaces the row it copies as a parent (with its new quality)."""
        self.pool.pop(cid, None)
        self.rows.pop(cid, None)

    def restore(self, candidates: pa.Table) -> list[dict]:
        """Rebuild from the committed candidates (resume); returns their rows (the columns
        the pool needs) for the caller's own use."""
        rows = candidates.select(["id", "parent_id", "step", "status", "quality", "problem_id", "problem", "solution",
                                  "answer", "depth", "cell", "skill", "disputed"]).to_pylist()
        for r in rows:
            if r["status"] in KNOWN and r["problem_id"]:
                self.seen.add(r["problem_id"])
            if r["status"] == Status.RESCORED:
                self._drop(r["parent_id"])
            if archive_eligible(r["status"], r["quality"]):
                self.pool[r["id"]] = Parent(r["id"], r["problem"], r["solution"] or "",
                                            r["answer"] or "", r["depth"])
                self.rows[r["id"]] = PoolRow(r["id"], r["quality"], r["cell"], r["status"] == Status.SEED,
                                             bool(r["disputed"]))
        self.op_counts = operator_counts(candidates)
        return rows

    def select(self, config: Config, archive: Archive, operators: list[OperatorSpec], rng: np.random.Generator,
               count: int) -> list[Parent]:
        """A parent per slot (`count` slots) with the slot's operator, and its second parent
        or target.

        Draws, all from `rng` (the checkpointed RNG), in this order: the operators (only
        when more than one is on), the parents, then per slot a crossover's second parent or
        a niche target. With the defaults this is exactly the archive's uniform draw over
        cells.
        """
        run, ops = config.run, config.operators
        specs = choose_operators(operators, self.op_counts, count, rng, bandit=ops.bandit, ucb_c=ops.ucb_c)
        elites: list[tuple[int, str]] = []
        if run.selection == "archive":
            data = archive.data()
            elites = list(zip(data.column("cell").to_pylist(), data.column("id").to_pylist(), strict=True))
        sampler = make_sampler(run.selection, list(self.rows.values()), elites, working_set_size=run.working_set,
                               niche_size=run.niche_size, exclude_disputed=config.validity.exclude_parents)
        view = NicheView(archive) if any(s.role == "niche" for s in specs) else None
        parents = []
        for spec, pid in zip(specs, sampler.draw(count, rng), strict=True):
            p = replace(self.pool[pid], operator=spec.name)
            if spec.role == "crossover":
                p = replace(p, second=self.pool[sampler.draw(1, rng)[0]])
            elif spec.role == "niche" and view is not None:
                t = view.target(self.rows[pid].niche, rng)
                ex = self.pool.get(t.example_id) if t.example_id else None
                p = replace(p, second=ex, target=t.label, target_text=target_text(t, ex.problem if ex else None))
            parents.append(p)
        return parents


def resume_archive(run: RunDir, step: int, candidates: pa.Table, kind: str, log) -> Archive:
    """The archive of committed step `step`: its snapshot, or (a snapshot of another step)
    its re-derivation from the committed rows; refused when there is none to take the
    cells from or it is of another kind than `kind`."""
    archive, state = None, {}
    try:
        archive, state = load_archive(run.archive_dir)
    except (OSError, ValueError, KeyError) as exc:
        log(f"resume: archive snapshot unreadable ({exc}); rebuilding from shards")
    if archive is None or state.get("step") != step:
        if archive is None:
            raise RunError(f"run directory {run.path}: no readable archive snapshot to "
                           "take the cells from; the run cannot be resumed")
        log(f"resume: archive snapshot is from step {state.get('step')}, rebuilding "
            f"it from the shards of steps 0..{step}")
        archive = rederive_archive(archive, candidates)
    if archive.kind != kind:
        raise RunError(f"run directory {run.path}: the archive snapshot is of kind {archive.kind!r} but "
                       f"config key 'archive.kind' is {kind!r}")
    return archive
