"""`sparq explore`: the data behind the page, the command, and the page itself in a real
headless Chromium (the system's /usr/bin/chromium, driven by Playwright), opened from file://.

Without Chromium or Playwright the browser tests skip locally; in CI (CI set) that is an
error, as for vLLM (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from flows.cli import main
from pipeline.read.explore import (
    ATTEMPT_CHARS,
    EXPLORE_FILE,
    explore_data,
    occupancy_after,
    render_page,
    run_data,
    write_explorer,
)
from pipeline.read.inspection import derive_elites, load_run
from pipeline.store.records import Status
from tests.helpers.run_fixtures import HTML_PROBLEM, make_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
_DATA = re.compile(r'<script id="sparq-data" type="application/json">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    # Same config (so the same centroids) as run_dir, two steps: it fills fewer cells.
    return make_run(tmp_path_factory.mktemp("explore-short"), steps=2)


@pytest.fixture(scope="module")
def page(run_dir: Path) -> Path:
    return write_explorer([run_dir]).path


def _data(page: Path) -> dict:
    text = _DATA.search(page.read_text(encoding="utf-8")).group(1)
    return json.loads(text)


# -- data -------------------------------------------------------------------------------------------
def test_timeline_replay_equals_the_archive_after_every_step(run_dir: Path):
    run = load_run(run_dir)
    data = run_data(run)
    per_step = {m["step"]: m for m in run.metrics.to_pylist()}
    for step in range(run.step + 1):
        held = occupancy_after(data["events"], step)
        upto = run.candidates.filter(pc.less_equal(run.candidates["step"], step))
        expected = {e["cell"]: e["id"] for e in derive_elites(upto)}
        assert {c: data["c"]["id"][i] for c, i in held.items()} == expected
        assert len(held) == per_step[step]["num_elites"]  # what the campaign itself recorded
    final = occupancy_after(data["events"], run.step)
    assert {c: data["c"]["id"][i] for c, i in final.items()} == {e["cell"]: e["id"] for e in run.elites}
    assert len(occupancy_after(data["events"], 0)) < len(final)  # the fixture grows its archive


def test_columns_and_links_match_the_candidates(run_dir: Path):
    run = load_run(run_dir)
    c = run_data(run)["c"]
    rows = run.candidates.to_pylist()
    assert c["id"] == [r["id"] for r in rows] and len(c["step"]) == len(rows)
    for i, r in enumerate(rows):
        parent = c["parent"][i]
        assert (rows[parent]["id"] if parent >= 0 else None) == r["parent_id"]
        assert c["problem"][i] == r["problem"] and c["depth"][i] == r["depth"]
    data = run_data(run)
    assert [data["dict"]["status"][k] for k in c["status"]] == [r["status"] for r in rows]
    assert len(data["xy"]) == run.cells == 32
    assert set(data["blocks"]) == {str(s) for s in range(run.step + 1)}


def test_page_escapes_run_text(page: Path):
    html = page.read_text(encoding="utf-8")
    assert html.count("<script") == 2 and html.count("</script>") == 2  # the data and the code only
    assert "<b>Add</b>" not in html and "document.title='pwned'" in html  # the text is there, inert
    data = _data(page)
    assert HTML_PROBLEM in data["runs"][0]["c"]["problem"]
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in html


def test_runs_sharing_centroids_are_compared_cell_by_cell(run_dir: Path, short_run: Path, tmp_path: Path):
    long_run, short = load_run(run_dir), load_run(short_run)
    data = explore_data([long_run, short])
    cmp = data["compare"]
    assert cmp["group"] == [0, 1] and cmp["not_comparable"] == []
    long_cells = {e["cell"] for e in long_run.elites}
    short_cells = {e["cell"] for e in short.elites}
    assert cmp["only"]["0"] == sorted(long_cells - short_cells) and cmp["only"]["0"]
    assert cmp["only"]["1"] == sorted(short_cells - long_cells)
    assert cmp["both"] == sorted(long_cells & short_cells)
    # Other centroids: the same cell number is another region, so no cell comparison.
    other = tmp_path / "other"
    shutil.copytree(short_run, other)
    np.save(other / "archive" / "centroids.npy", -np.load(other / "archive" / "centroids.npy"))
    cmp = explore_data([long_run, load_run(other)])["compare"]
    assert cmp["group"] == [0] and cmp["not_comparable"] == [1] and cmp["both"] == sorted(long_cells)


def test_template_markers_are_checked(monkeypatch):
    import pipeline.read.explore as ex

    monkeypatch.setattr(ex, "_asset", lambda name: "no markers" if name == "explore.html" else "")
    with pytest.raises(ValueError, match="must contain"):
        render_page({"runs": []})


# -- command ----------------------------------------------------------------------------------------
def test_cli_explore_writes_the_page_and_a_summary(run_dir: Path, short_run: Path, tmp_path: Path, capsys):
    assert main(["explore", str(run_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    n = load_run(run_dir).candidates.num_rows
    assert len(out) == 1 and out[0].startswith(f"explorer: {run_dir / 'report' / EXPLORE_FILE} (")
    assert f"; {n} candidates, seeds included, from 1 run(s))" in out[0]
    target = tmp_path / "both.html"
    assert main(["explore", str(run_dir), str(short_run), "--out", str(target)]) == 0
    assert "from 2 run(s)" in capsys.readouterr().out and len(_data(target)["runs"]) == 2


def test_cli_explore_bad_input_is_one_line(run_dir: Path, tmp_path: Path, capsys):
    for bad, needle in ((tmp_path / "nope", "is not a directory"), (tmp_path, "is not a run directory")):
        assert main(["explore", str(run_dir), str(bad), "--out", str(tmp_path / "x.html")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [err[0]] and err[0].startswith(f"sparq: error: {bad} ") and needle in err[0], err
    assert not (tmp_path / "x.html").exists()


def test_cli_explore_names_a_damaged_attempts_shard(run_dir: Path, tmp_path: Path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shard = copy / "attempts" / "step-000002.parquet"
    shard.write_bytes(b"PAR1 not really parquet")
    assert main(["explore", str(copy), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sparq: error: attempts shard {shard} is unreadable"), err
    assert not (tmp_path / "x.html").exists()


# -- the page in a real browser ----------------------------------------------------------------------
def _browser_problem() -> str | None:
    if not CHROMIUM.exists():
        return f"needs {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright package (pip install -e '.[dev]')"
    return None


def _require_browser() -> None:
    """Skip without a browser; in CI (CI set) fail instead, so a broken install is seen."""
    problem = _browser_problem()
    if problem and os.environ.get("CI"):
        pytest.fail(f"the explorer's browser tests must run in CI, but: {problem}")
    if problem:
        pytest.skip(problem)


def test_missing_browser_skips_locally_and_fails_in_ci(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium"):
        _require_browser()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="must run in CI, but: needs .*no-chromium"):
        _require_browser()


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def expect(locator):
    from playwright.sync_api import expect as pw_expect  # imported here: the module loads without it

    return pw_expect(locator)


class Opened:
    """A page opened from file:// with every request and every error recorded."""

    def __init__(self, browser, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []  # every request the page made, as intercepted
        self.seen: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def route(r):  # anything but the page itself is logged and refused
            self.requests.append(r.request.url)
            return r.continue_() if r.request.url == self.url else r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("request", lambda req: self.seen.append(req.url))  # what interception might miss
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready='1']", timeout=30000)

    def count(self) -> int:
        return int(self.page.get_attribute("#occupied", "data-count"))

    def rows(self) -> int:
        return int(self.page.get_attribute("#page-info", "data-rows"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def opened(browser, page: Path, tmp_path: Path):
    # A copy alone in an empty directory: anything the page needed besides itself would fail.
    alone = tmp_path / "alone" / "explore.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    o = Opened(browser, alone)
    yield o
    assert o.errors == []
    assert o.requests == [o.url] and set(o.seen) == {o.url}, (o.requests, o.seen)  # no request leaves the page
    o.close()


def test_request_log_catches_a_request(browser, page: Path, tmp_path: Path):
    # The no-request check must be able to fail: without the page's CSP, an image from the
    # network is requested, logged and refused.
    html = page.read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    bad = tmp_path / "bad.html"
    bad.write_text(html.replace("<body>", '<body><img alt="" src="http://127.0.0.1:9/x.png">', 1), encoding="utf-8")
    o = Opened(browser, bad)
    try:
        assert "http://127.0.0.1:9/x.png" in o.requests and "http://127.0.0.1:9/x.png" in o.seen
    finally:
        o.close()


def test_clicking_a_cell_shows_its_elite(opened: Opened, run_dir: Path):
    run = load_run(run_dir)
    elite = max((e for e in run.elites if e["status"] == Status.OK), key=lambda e: (e["quality"], e["depth"]))
    p = opened.page
    cell = p.locator(f"rect.cell[data-cell='{elite['cell']}']")
    assert cell.get_attribute("data-state") == "generated"
    cell.hover(force=True)
    assert p.locator("#tip").is_visible() and f"cell {elite['cell']}: quality" in p.inner_text("#tip")
    cell.click(force=True)
    assert p.get_attribute("#panel", "data-id") == elite["id"]
    panel = p.locator("#panel")
    assert panel.locator(".problem").inner_text() == elite["problem"]
    assert panel.locator(".answer").inner_text() == elite["answer"]
    assert f"({elite['n_correct']} of {elite['k']} correct)" in panel.inner_text()
    p.wait_for_selector("#panel ol.attempts li")
    attempts = pq.read_table(run_dir / "attempts" / f"step-{elite['step']:06d}.parquet").to_pylist()
    mine = sorted((a for a in attempts if a["candidate_id"] == elite["id"]), key=lambda a: a["attempt"])
    items = panel.locator("ol.attempts li")
    assert items.count() == elite["k"] == len(mine)
    for k, a in enumerate(mine):
        text = items.nth(k).inner_text()
        assert text.startswith("correct" if a["correct"] else "wrong") and f"extracted: {a['extracted']}" in text
        assert a["text"].strip()[:ATTEMPT_CHARS] in text
    # an empty cell says so; a seed cell is drawn as a seed
    seeds = {e["cell"] for e in run.elites if e["status"] == Status.SEED}
    assert {int(x) for x in p.eval_on_selector_all("rect.cell[data-state='seed']",
                                                    "els => els.map(e => e.dataset.cell)")} == seeds
    p.locator("rect.cell[data-state='empty']").first.click(force=True)
    assert "is empty after step" in panel.inner_text()


def test_search_and_filters_narrow_the_table(opened: Opened, run_dir: Path):
    run = load_run(run_dir)
    rows = run.candidates.to_pylist()
    p = opened.page
    assert opened.rows() == len(rows)
    p.fill("#search", "heptagon")
    expected = [r["id"] for r in rows if "heptagon" in (r["problem"] or "").lower()]
    expect(p.locator("#page-info")).to_have_attribute("data-rows", str(len(expected)))
    shown = p.eval_on_selector_all("#cands tbody tr td:first-child", "els => els.map(e => e.textContent)")
    assert sorted(shown) == sorted(expected) and 0 < len(expected) < len(rows)
    p.fill("#search", "")
    p.click("#f-reset")
    dup = p.eval_on_selector("#f-status", "s => [...s.options].find(o => o.text === 'duplicate').value")
    p.select_option("#f-status", dup)
    assert opened.rows() == sum(r["status"] == Status.DUPLICATE for r in rows)
    p.click("#f-reset")
    p.fill("#step-min", "2")
    p.fill("#step-max", "3")
    p.press("#step-max", "Enter")
    p.select_option("#f-arch", "yes")
    assert opened.rows() == sum(2 <= r["step"] <= 3 and r["archive_outcome"] in ("new", "improve") for r in rows)
    p.click("#f-reset")
    p.fill("#sr-min", "0.5")
    p.press("#sr-min", "Enter")
    assert opened.rows() == sum(r["solve_rate"] is not None and r["solve_rate"] >= 0.5 for r in rows)
    p.click("#f-reset")
    p.click("#cands th[data-key='q']")
    p.click("#cands th[data-key='q']")  # descending
    first = p.inner_text("#cands tbody tr:first-child td:first-child")
    assert first == max(rows, key=lambda r: (r["quality"], -r["step"], -r["slot"]))["id"]


def test_lineage_of_a_deep_elite_reaches_its_seed(opened: Opened, run_dir: Path):
    run = load_run(run_dir)
    deep = max(run.elites, key=lambda e: e["depth"])
    assert deep["depth"] >= 2
    by_id = {r["id"]: r for r in run.candidates.to_pylist()}
    chain = [deep]
    while chain[-1]["parent_id"]:
        chain.append(by_id[chain[-1]["parent_id"]])
    p = opened.page
    p.locator(f"rect.cell[data-cell='{deep['cell']}']").click(force=True)
    nodes = p.locator("#lineage > ol.lineage > li")
    assert nodes.count() == deep["depth"] + 1 == len(chain)
    ids = [p.locator("#lineage > ol.lineage > li").nth(k).locator(".meta a.jump").first.inner_text()
           for k in range(nodes.count())]
    assert ids == [r["id"] for r in chain]
    assert nodes.last.get_attribute("class") == "seed" and chain[-1]["status"] == Status.SEED
    assert p.locator("#lineage .diff").count() == deep["depth"]  # one word diff per hop
    assert p.locator("#lineage .diff ins").count() > 0 and p.locator("#lineage .diff del").count() > 0
    nodes.last.locator(".meta a.jump").first.click()  # following a link opens that candidate
    assert p.get_attribute("#panel", "data-id") == chain[-1]["id"]


def test_slider_replays_the_archive(opened: Opened, run_dir: Path):
    run = load_run(run_dir)
    per_step = {m["step"]: m["num_elites"] for m in run.metrics.to_pylist()}
    p = opened.page
    assert opened.count() == per_step[run.step] == len(run.elites)
    for step in (0, 2, run.step):
        p.eval_on_selector("#step", f"s => {{ s.value = '{step}'; s.dispatchEvent(new Event('input')); }}")
        assert opened.count() == per_step[step]
        assert p.inner_text("#step-label") == str(step)
    assert per_step[0] < per_step[run.step]


def test_run_text_stays_text(opened: Opened, run_dir: Path):
    p = opened.page
    p.fill("#search", "pwned")
    n = sum(r["problem"] == HTML_PROBLEM for r in load_run(run_dir).candidates.to_pylist())  # duplicates too
    expect(p.locator("#page-info")).to_have_attribute("data-rows", str(n))
    p.click("#cands tbody tr:first-child")
    assert p.locator("#panel .problem").inner_text() == HTML_PROBLEM
    assert p.locator("#panel b:has-text('Add')").count() == 0 and p.title().startswith("sparq explorer")


def _edited_copy(run_dir: Path, tmp_path: Path, edit) -> tuple[Path, list[dict]]:
    """A copy of `run_dir` whose step-1 candidates `edit(rows)` changed in place."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shard = copy / "candidates" / "step-000001.parquet"
    table = pq.read_table(shard)
    rows = table.to_pylist()
    edit(rows)
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), shard)
    return copy, rows


def _ok_rows(rows: list[dict]) -> list[int]:
    return [k for k, r in enumerate(rows) if r["status"] == Status.OK]


def test_disputed_candidate_is_flagged(browser, run_dir: Path, tmp_path: Path):
    copy, rows = _edited_copy(run_dir, tmp_path, lambda rows: rows[_ok_rows(rows)[0]].update(
        disputed=True, majority_answer="3", majority_share=0.75))
    i = _ok_rows(rows)[0]
    o = Opened(browser, write_explorer([copy], tmp_path / "page.html").path)
    try:
        o.page.fill("#search", rows[i]["id"])
        expect(o.page.locator("#page-info")).to_have_attribute("data-rows", "1")
        o.page.click("#cands tbody tr:first-child")
        text = o.page.inner_text("#panel")
        assert "disputed: a solver majority of 75% answered 3, the reference says 7" in text
        assert o.errors == []
    finally:
        o.close()


def test_validity_checks_are_shown(browser, run_dir: Path, tmp_path: Path):
    # One candidate marked invalid by the checks, one valid: the panel shows each with its
    # reasons, the overview the valid share, and the progress pane a valid-share chart.
    reason = "arithmetic: 5 * 8 = 25 is false (5 * 8 = 40)"

    def mark(rows: list[dict]) -> None:
        bad, good = _ok_rows(rows)[:2]
        rows[bad].update(valid=False, invalid_checks="arithmetic", validity_reason=reason)
        rows[good].update(valid=True, invalid_checks=None, validity_reason=None)

    copy, rows = _edited_copy(run_dir, tmp_path, mark)
    bad, good = _ok_rows(rows)[:2]
    checked = [r for r in load_run(copy).candidates.to_pylist() if r["step"] > 0 and r["valid"] is not None]
    n_valid = sum(r["valid"] for r in checked)
    o = Opened(browser, write_explorer([copy], tmp_path / "page.html").path)
    try:
        for i, expected in ((bad, f"invalid: {reason}"), (good, "valid: every check passed")):
            o.page.fill("#search", rows[i]["id"])
            expect(o.page.locator("#page-info")).to_have_attribute("data-rows", "1")
            expect(o.page.locator("#cands tbody tr:first-child")).to_contain_text(rows[i]["id"])
            o.page.click("#cands tbody tr:first-child")
            expect(o.page.locator("#panel")).to_contain_text(rows[i]["id"])
            assert expected in o.page.inner_text("#panel")
        assert f"valid share ({n_valid} of {len(checked)} checked)" in o.page.inner_text("#overview").lower()
        assert o.page.locator("#chart-valid polyline").count() == 1
        assert o.errors == []
    finally:
        o.close()


def test_two_runs_side_by_side(browser, run_dir: Path, short_run: Path, tmp_path: Path):
    o = Opened(browser, write_explorer([run_dir, short_run], tmp_path / "two.html").path)
    try:
        p = o.page
        assert p.locator("#chart-coverage polyline").count() == 2 and p.locator("#chart-qd polyline").count() == 2
        only = load_run(run_dir).elites
        short_cells = {e["cell"] for e in load_run(short_run).elites}
        exclusive = sorted({e["cell"] for e in only} - short_cells)
        links = p.locator("#compare .only[data-run='0'] a")
        assert [int(x) for x in links.all_inner_texts()] == exclusive
        p.select_option("#mode", "compare")
        coloured = p.eval_on_selector_all("rect.cell", "els => els.filter(e => e.getAttribute('fill') === '#1f77b4')"
                                          ".map(e => +e.dataset.cell)")
        assert sorted(coloured) == exclusive
        p.select_option("#run", "1")
        assert o.count() == len(short_cells)
        assert o.errors == [] and o.requests == [o.url] and set(o.seen) == {o.url}
    finally:
        o.close()


# -- the generate flow's artifacts ---------------------------------------------------------------------
def test_publish_report_writes_and_links_the_explorer(run_dir: Path, tmp_path: Path, monkeypatch):
    # The artifact calls are recorded instead of sent (tests/unit/pipeline/read/test_report.py runs the flow
    # against a real Prefect server); the page is the one `sparq explore RUN` writes.
    import logging

    import prefect.artifacts

    from flows.artifacts import publish_report

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    sent: dict[str, dict] = {}
    for name in ("create_markdown_artifact", "create_table_artifact"):
        monkeypatch.setattr(prefect.artifacts, name, lambda name=name, **kw: sent.setdefault(kw["key"], kw))
    assert publish_report(str(copy), "sparq-run", logging.getLogger("test"))
    page = copy / "report" / EXPLORE_FILE
    assert page.is_file() and _data(page)["runs"][0]["run_id"] == load_run(copy).run_id
    md = sent["sparq-run-figures"]["markdown"]
    assert f"[open explore.html]({page.resolve().as_uri()}) `{page.resolve()}`" in md


def test_publish_report_survives_an_explorer_that_cannot_be_written(run_dir: Path, tmp_path: Path, monkeypatch,
                                                                      caplog):
    import logging

    import prefect.artifacts

    import flows.artifacts
    from pipeline.store.storage import RunError

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    sent: dict[str, dict] = {}
    for name in ("create_markdown_artifact", "create_table_artifact"):
        monkeypatch.setattr(prefect.artifacts, name, lambda name=name, **kw: sent.setdefault(kw["key"], kw))

    def broken(*args, **kwargs):
        raise RunError("cannot write explore.html: disk full")

    monkeypatch.setattr(flows.artifacts, "write_explorer", broken)
    with caplog.at_level(logging.WARNING):
        assert flows.artifacts.publish_report(str(copy), "sparq-run", logging.getLogger("test"))
    assert "run explorer not written: cannot write explore.html: disk full" in caplog.text
    assert "explore.html" not in sent["sparq-run-figures"]["markdown"]


# -- archives without centroids -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["novelty", "skillset"])
def test_archive_kinds_without_centroids_get_a_grid(tmp_path: Path, kind: str):
    from pipeline.loop.generate import run_generation
    from tests.unit.pipeline.loop.test_variants import QUIET, make_config

    run_generation(make_config(tmp_path, archive={"kind": kind, "cells": 32, "radius": 0.3}), tmp_path / "run",
                   **QUIET)
    run = load_run(tmp_path / "run")
    data = run_data(run)
    assert data["centroid_key"] is None and "laid out on a grid" in data["projection"]
    cells = [c for c in data["c"]["cell"] if c >= 0]
    assert len(data["xy"]) >= max(cells) + 1 and len({tuple(p) for p in data["xy"]}) == len(data["xy"])
    final = occupancy_after(data["events"], run.step)
    assert {c: data["c"]["id"][i] for c, i in final.items()} == {e["cell"]: e["id"] for e in run.elites}
    # a second run of another kind is never compared cell by cell
    assert explore_data([run, run])["compare"]["group"] == []


def test_page_of_a_run_with_only_seeds(browser, tmp_path: Path):
    run_dir = make_run(tmp_path, steps=0)
    o = Opened(browser, write_explorer([run_dir]).path)
    try:
        seeds = len(load_run(run_dir).elites)
        assert o.count() == seeds and o.page.locator("rect.cell[data-state='generated']").count() == 0
        assert o.rows() == 10
        o.page.click("#cands tbody tr:first-child")
        o.page.wait_for_selector("#panel :text('no attempts')")
        assert o.page.locator("#lineage > ol.lineage > li.seed").count() == 1
        assert o.errors == [] and o.requests == [o.url]
    finally:
        o.close()


def test_the_committed_page_of_a_real_embedded_model_run(browser, repo: Path):
    # docs/explore/explore.html: a 5-step run of the embedded model on vLLM (the README links
    # it). Its deepest elite opens from the map and its lineage reaches a seed.
    path = repo / "docs" / "explore" / "explore.html"
    run = _data(path)["runs"][0]
    c = run["c"]
    gen = [i for i in range(len(c["id"])) if c["step"][i] > 0 and c["q"][i] > 0 and c["cell"][i] >= 0
           and occupancy_after(run["events"], run["steps"]).get(c["cell"][i]) == i]
    deep = max(gen, key=lambda i: (c["depth"][i], c["q"][i]))
    assert c["depth"][deep] >= 2
    o = Opened(browser, path)
    try:
        p = o.page
        p.locator(f"rect.cell[data-cell='{c['cell'][deep]}']").click(force=True)
        assert p.get_attribute("#panel", "data-id") == c["id"][deep]
        p.wait_for_selector("#panel ol.attempts li")
        assert p.locator("#panel ol.attempts li").count() == c["k"][deep]
        nodes = p.locator("#lineage > ol.lineage > li")
        assert nodes.count() == c["depth"][deep] + 1 and nodes.last.get_attribute("class") == "seed"
        p.eval_on_selector("#step", "s => { s.value = '0'; s.dispatchEvent(new Event('input')); }")
        assert o.count() == len(occupancy_after(run["events"], 0)) < len(occupancy_after(run["events"], run["steps"]))
        assert o.errors == [] and o.requests == [o.url] and set(o.seen) == {o.url}
    finally:
        o.close()
