"""Load time of `sparq explore` on a large run, in headless Chromium.

    .venv/bin/python bench/explore_load.py                       # 400 steps, 25,000 candidates
    .venv/bin/python bench/explore_load.py --steps 40 --candidates 2500 --no-record

Synthesises a run directory with the project's own writers (RunDir.commit_step, the
records' schemas, a real CVTArchive with random unit centroids): `--steps` steps after the
seeds, `--candidates` rows in all (seeds included), k attempts per ok candidate with texts
of about the length the embedded model writes. Parents are drawn from the archive's
current elites, so lineages grow deep; operators, statuses, solve rates and disputed flags
are mixed. No model runs.

Then writes the explorer page (timed) and opens it from file:// in headless Chromium
(/usr/bin/chromium through Playwright) `--repeats` times, each in a fresh browser context:
load time = from `page.goto` to the page's ready marker (`body[data-ready]`, set by its
script after the first render of the map, the table and the charts); the page's own
`performance.now()` at that moment (from navigation start) is reported beside it. Also
timed inside the page: moving the timeline slider, sorting the table by quality, and a
text search.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from benchlib import REPO, append_results

sys.path.insert(0, str(REPO))

from archives import AddStatus, CVTArchive  # noqa: E402
from pipeline.read.explore import write_explorer  # noqa: E402
from pipeline.store.records import (  # noqa: E402
    ATTEMPTS_SCHEMA,
    CANDIDATES_SCHEMA,
    METRICS_SCHEMA,
    ArchiveOutcome,
    Attempt,
    Candidate,
    Status,
    StepMetrics,
    candidate_id,
    now,
    problem_id,
    to_table,
)
from pipeline.store.storage import Checkpoint, RunDir  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
WORDS = ("apple train garden marbles ticket rope baker tank week litre metre square prime number total each "
         "more less twice half sum difference product remainder cost price speed hour minute box bag page "
         "shelf class student teacher book pencil coin dollar percent ratio area side perimeter angle").split()
OPERATORS = ("sparq_mutate", "harder", "easier", "crossover")
OUTCOME = {AddStatus.NEW: ArchiveOutcome.NEW, AddStatus.IMPROVE_EXISTING: ArchiveOutcome.IMPROVE,
           AddStatus.NOT_ADDED: ArchiveOutcome.NOT_ADDED}


def sentence(rng: np.random.Generator, lo: int, hi: int) -> str:
    n = int(rng.integers(lo, hi))
    return " ".join(rng.choice(WORDS, size=n)) + f" {int(rng.integers(1, 500))}?"


def synthesize(run_dir: Path, *, steps: int, candidates: int, cells: int, k: int, seed: int = 0) -> None:
    """A committed run directory with `candidates` rows over steps 0..`steps` (see module doc)."""
    rng = np.random.default_rng(seed)
    dim = 32
    cents = rng.normal(size=(cells, dim)).astype(np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    archive = CVTArchive(centroids=cents)
    run = RunDir(run_dir)
    run.create("[run]\nseed = 0\n[quality]\nlo = 0.1\nhi = 0.9\n[archive]\nkind = \"cvt\"\n")
    run_id = run_dir.name
    n_seeds = max(1, min(200, candidates // 10)) if steps else candidates
    per_step = (candidates - n_seeds) // max(1, steps)
    extra = candidates - n_seeds - per_step * steps  # spread over the first steps
    rows_by_id: dict[str, tuple[Candidate, np.ndarray]] = {}
    for step in range(steps + 1):
        rows: list[Candidate] = []
        attempts: list[Attempt] = []
        embs = []
        count = n_seeds if step == 0 else per_step + (1 if step <= extra else 0)
        elites = archive.data()["id"].to_pylist() if step else []
        for slot in range(count):
            cid = candidate_id(run_id, step, slot)
            if step == 0:
                parent, op, depth, second = None, "seed", 0, None
                emb = cents[rng.integers(cells)] + 0.2 * rng.normal(size=dim)
            else:
                parent = elites[int(rng.integers(len(elites)))]
                op = OPERATORS[int(rng.integers(len(OPERATORS)))]
                second = elites[int(rng.integers(len(elites)))] if op == "crossover" else None
                depth = rows_by_id[parent][0].depth + 1
                emb = rows_by_id[parent][1] + 0.35 * rng.normal(size=dim)
            emb = (emb / np.linalg.norm(emb)).astype(np.float32)
            problem = sentence(rng, 12, 40)
            answer = str(int(rng.integers(1, 500)))
            u = rng.random()
            status = Status.SEED if step == 0 else Status.OK if u < 0.75 else Status.UNPARSEABLE if u < 0.9 \
                else Status.DUPLICATE
            n_correct, sr, quality, disputed, maj, share = 0, None, 0.0, None, None, None
            if status == Status.OK:
                n_correct = int(rng.binomial(k, rng.beta(0.6, 1.2)))
                sr = n_correct / k
                quality = 1 - sr if 0.1 <= sr <= 0.9 else 0.0
                share = max(n_correct, k - n_correct) / k
                maj = answer if n_correct * 2 >= k else str(int(rng.integers(1, 500)))
                disputed = maj != answer and share >= 0.75
                for a in range(k):
                    ok = a < n_correct
                    attempts.append(Attempt(candidate_id=cid, run_id=run_id, step=step, attempt=a,
                                            text=sentence(rng, 15, 45) + f" The answer is {answer if ok else maj}.",
                                            extracted=answer if ok else maj, correct=ok, tokens=48,
                                            prompt_version="bench", solver="bench", created_at=now()))
            unparseable = status == Status.UNPARSEABLE
            rows.append(Candidate(
                id=cid, run_id=run_id, step=step, slot=slot, parent_id=parent, depth=depth, operator=op,
                problem_id=None if unparseable else problem_id(problem), problem=None if unparseable else problem,
                solution=None if unparseable else sentence(rng, 20, 50) + f" The answer is {answer}.",
                answer=None if unparseable else answer, raw_output=None, status=status,
                reason="no solution section" if unparseable else "duplicate of an earlier problem"
                if status == Status.DUPLICATE else None,
                k=k if status == Status.OK else 0, n_correct=n_correct, solve_rate=sr, majority_answer=maj,
                majority_share=share, reference_agrees=None if sr is None else not disputed, quality=quality,
                cell=None, archive_outcome=ArchiveOutcome.INELIGIBLE, embedding=emb.tolist(), skill=None,
                prompt_version="bench", generator="bench", solver="bench", gen_tokens=120,
                solve_tokens=48 * (k if status == Status.OK else 0), created_at=now(), second_parent_id=second,
                disputed=disputed))
            embs.append(emb)
        elig = [i for i, r in enumerate(rows) if r.status == Status.SEED or (r.status == Status.OK and r.quality > 0)]
        if elig:
            st, cl = archive.add([rows[i].id for i in elig], np.stack([embs[i] for i in elig]),
                                 [rows[i].quality for i in elig], steps=[step] * len(elig))
            for i, s, c in zip(elig, st.tolist(), cl.tolist(), strict=True):
                rows[i] = replace(rows[i], archive_outcome=OUTCOME[AddStatus(s)], cell=int(c))
        for r, e in zip(rows, embs, strict=True):
            rows_by_id[r.id] = (r, e)
        stats = archive.stats
        metrics = StepMetrics(step=step, candidates=len(rows), ok=sum(r.status == Status.OK for r in rows),
                              unparseable=sum(r.status == Status.UNPARSEABLE for r in rows),
                              duplicate=sum(r.status == Status.DUPLICATE for r in rows),
                              in_band=sum(r.quality > 0 for r in rows),
                              accepted=sum(r.archive_outcome in (ArchiveOutcome.NEW, ArchiveOutcome.IMPROVE)
                                           and r.status == Status.OK for r in rows),
                              new_cells=sum(r.archive_outcome == ArchiveOutcome.NEW and r.status == Status.OK
                                            for r in rows),
                              num_elites=stats.num_elites, coverage=stats.coverage, qd_score=stats.qd_score,
                              attempts=len(attempts), gen_tokens=0, solve_tokens=0, mutate_seconds=0.0,
                              solve_seconds=0.0, seconds=0.0, created_at=now())
        ckpt = Checkpoint(run_id=run_id, step=step, rng_state={}, counters={})
        run.commit_step(step, to_table(rows, CANDIDATES_SCHEMA), to_table(attempts, ATTEMPTS_SCHEMA),
                        to_table([metrics], METRICS_SCHEMA), ckpt,
                        save_archive=lambda d, s=step: archive.save(d, extra={"step": s, "run_id": run_id}))
        if step % 50 == 0:
            print(f"  step {step}: {len(rows_by_id)} candidates, {stats.num_elites} elites", file=sys.stderr)


def measure(page_path: Path, repeats: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"load_s": [], "ready_ms": [], "slider_ms": [], "sort_ms": [], "search_ms": []}
    url = page_path.resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for _ in range(repeats):
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                t0 = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                out["load_s"].append(time.perf_counter() - t0)
                out["ready_ms"].append(page.evaluate("() => window.sparqReadyMs"))
                out["slider_ms"].append(page.evaluate("""() => { const s = document.getElementById('step');
                    const t = performance.now(); s.value = String(Math.floor(+s.max / 2));
                    s.dispatchEvent(new Event('input')); return performance.now() - t; }"""))
                out["sort_ms"].append(page.evaluate("""() => { const t = performance.now();
                    document.querySelector("#cands th[data-key='q']").click(); return performance.now() - t; }"""))
                out["search_ms"].append(page.evaluate("""() => { const s = document.getElementById('f-arch');
                    const q = document.getElementById('search'); q.value = 'garden';
                    const t = performance.now(); s.dispatchEvent(new Event('change'));
                    return performance.now() - t; }"""))
                if errors:
                    raise RuntimeError(f"the page reported errors: {errors}")
                ctx.close()
        finally:
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--candidates", type=int, default=25_000, help="rows in all, seeds included")
    ap.add_argument("--cells", type=int, default=1024)
    ap.add_argument("--k", type=int, default=8, help="attempts per ok candidate")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="write the run and the page here and keep them")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to bench/results.md")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sparq-explore-bench-"))
    run_dir = base / "run"
    t0 = time.perf_counter()
    synthesize(run_dir, steps=args.steps, candidates=args.candidates, cells=args.cells, k=args.k)
    synth_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    explorer = write_explorer([run_dir], base / "explore.html")
    write_s = time.perf_counter() - t0
    m = measure(explorer.path, args.repeats)
    med = {key: statistics.median(v) for key, v in m.items()}
    lines = [
        f"run: {args.steps} steps, {explorer.candidates} candidates (seeds included), {args.cells} cells, "
        f"k = {args.k}; "
        f"synthesised in {synth_s:.1f} s",
        f"`sparq explore` (write_explorer): {write_s:.1f} s, page {explorer.bytes / 1e6:.1f} MB",
        f"page load in headless Chromium, goto to ready marker: median {med['load_s']:.2f} s over {args.repeats} "
        f"(each: {', '.join(f'{x:.2f}' for x in m['load_s'])}); the page's own clock at ready: "
        f"{med['ready_ms']:.0f} ms from navigation start",
        f"in the page (medians): timeline slider to the middle step {med['slider_ms']:.0f} ms, sort by quality "
        f"{med['sort_ms']:.0f} ms, text search over all candidates {med['search_ms']:.0f} ms",
    ]
    for line in lines:
        print(line)
    if not args.no_record:
        append_results("explorer page load (bench/explore_load.py, synthetic run, no model)", lines)
    if not args.keep:
        print(f"(run and page in {base}; removed on reboot)")


if __name__ == "__main__":
    main()
