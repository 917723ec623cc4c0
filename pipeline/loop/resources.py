"""The heavy things a campaign uses, each built on first use and all closed together: the
engine (unless one was handed in, which stays the caller's), the solver's and the
verifier's own engines (the same rule), the embedder with its background thread, and the
domain's judge."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from pipeline.config import Config
from pipeline.domains import Domain, Judge
from pipeline.engines import Engine, make_engine
from pipeline.placement.embedding import Embedder


class Resources:
    def __init__(self, config: Config, domain: Domain, *, engine: Engine | None, judge: Judge | None,
                 log, solver_engine: Engine | None = None) -> None:
        self.config, self.domain, self.log = config, domain, log
        self._engine = engine
        # An engine handed in belongs to the caller (e.g. one model shared by several
        # campaigns): close() only drops it. One built here is closed here.
        self._owns_engine = engine is None
        # A judge handed in (e.g. one that fans out to a cluster) must offer judge_many and close.
        self._judge = judge
        self._verifier_engine: Engine | None = None
        # `[solver] engine = "own"` (e.g. a round's fine-tuned student, flows/rounds.py):
        # one handed in stays the caller's, like the campaign's engine.
        self._solver_engine = solver_engine
        self._owns_solver = solver_engine is None
        self._embedder: Embedder | None = None
        self._embed_pool: ThreadPoolExecutor | None = None
        self._prefetched: tuple[tuple[str, ...], Future] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            model = "" if self.config.engine.kind == "scripted" else f":{self.config.engine.model}"
            self.log(f"loading engine {self.config.engine.kind}{model} ...")
            self._engine = make_engine(self.config.engine, seed=self.config.run.seed)
            self._owns_engine = True
        return self._engine

    @property
    def engine_name(self) -> str:
        """The engine that ran; its kind when none was built (every step already committed)."""
        return self._engine.name if self._engine is not None else self.config.engine.kind

    @property
    def verifier_engine(self) -> Engine:
        """The verifier's engine: the campaign's own, or its own [verifier.own] engine."""
        if self.config.verifier.engine == "campaign":
            return self.engine
        if self._verifier_engine is None:
            self._verifier_engine = self._own_engine("verifier", self.config.verifier.own, 1)
        return self._verifier_engine

    @property
    def solver_engine(self) -> Engine:
        """The solver's engine: the campaign's own, or its own [solver.own] engine."""
        if self.config.solver.engine == "campaign":
            return self.engine
        if self._solver_engine is None:
            self._solver_engine = self._own_engine("solver", self.config.solver.own, 2)
            self._owns_solver = True
        return self._solver_engine

    def _own_engine(self, role: str, cfg, seed_offset: int) -> Engine:
        """A role's own engine (`[ROLE.own]`), seeded apart from the campaign's."""
        self.log(f"loading {role} engine {cfg.kind}:{cfg.model} ...")
        return make_engine(cfg, seed=self.config.run.seed + seed_offset)

    @property
    def solver_name(self) -> str:
        """The name solver attempts are recorded under (no engine is built for it)."""
        if self.config.solver.engine == "campaign":
            return self.engine.name
        return self._solver_engine.name if self._solver_engine is not None else self.config.solver.own.kind

    def engine_for(self, role: str) -> Engine:
        """The engine of a request's role ("generator", "solver", "verifier")."""
        if role == "solver":
            return self.solver_engine
        return self.verifier_engine if role == "verifier" else self.engine

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.config.archive.embedder)
        return self._embedder

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = self.domain.new_judge(self.config.solver.verify_timeout_s)
        return self._judge

    # -- embeddings off the loop's thread ------------------------------------------------
    def _pool(self) -> ThreadPoolExecutor:
        if self._embed_pool is None:
            self._embed_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparq-embed")
        return self._embed_pool

    def prefetch_embeddings(self, problems: list[str]) -> None:
        """Embed a step's new problems in the background while their solves run: with a
        fast remote engine the embedding would otherwise leave every endpoint idle."""
        embedder = self.embedder  # loaded here, not in the thread
        self._prefetched = (tuple(problems), self._pool().submit(embedder.encode, problems))

    def embed_async(self, problems: list[str]) -> Future:
        """Embed `problems` on the embedding thread; a future of the array."""
        return self._pool().submit(self.embedder.encode, problems)

    def embeddings(self, problems: list[str]) -> np.ndarray:
        """The embeddings of `problems`: prefetched when they are what was prefetched."""
        pre, self._prefetched = self._prefetched, None
        if pre is not None and pre[0] == tuple(problems):
            return pre[1].result()
        return self.embedder.encode(problems)

    def close(self) -> None:
        if self._embed_pool is not None:
            self._embed_pool.shutdown(wait=True, cancel_futures=True)
            self._embed_pool, self._prefetched = None, None
        if self._judge is not None:
            self._judge.close()
            self._judge = None
        if self._verifier_engine is not None:
            self._verifier_engine.close()
            self._verifier_engine = None
        if self._solver_engine is not None:
            if self._owns_solver:
                self._solver_engine.close()
            self._solver_engine = None
        if self._engine is not None:
            if self._owns_engine:
                self._engine.close()
            self._engine = None
