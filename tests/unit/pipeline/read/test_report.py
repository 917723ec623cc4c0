"""`sparq report`: figures, the self-contained HTML page (rendered in headless Chromium when
the machine has it), and the Prefect artifact payloads."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archives import plots
from flows.artifacts import check_key, elite_rows, figures_markdown, overview_rows
from flows.cli import main
from pipeline.read.inspection import load_run, summarize
from pipeline.read.report import FIGURES, Report, build_report, render_html
from tests.helpers.run_fixtures import HTML_PROBLEM, make_run, run_config

CHROMIUM = Path("/usr/bin/chromium")
_IMG_SRC = re.compile(r'<img [^>]*src="([^"]*)"')


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    # --top 50 puts every generated elite in the table, the one full of HTML included.
    return build_report(make_run(tmp_path_factory.mktemp("report")), top=50)


def _png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return img.convert("RGB")


def _colours(img: Image.Image) -> int:
    return len(img.getcolors(maxcolors=1 << 20) or [])


# -- figures -------------------------------------------------------------------------------
def test_pca_2d_finds_the_main_axis():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    direction = np.array([3.0, -4.0, 0.0, 0.0]) / 5.0
    points = np.outer(t, direction) + 0.01 * rng.normal(size=(200, 4)) + 7.0
    xy, explained = plots.pca_2d(points)
    assert xy.shape == (200, 2) and explained[0] > 0.99
    assert abs(np.corrcoef(xy[:, 0], t)[0, 1]) > 0.999
    again, _ = plots.pca_2d(points[::-1])  # the sign convention does not depend on row order
    np.testing.assert_allclose(again[::-1], xy, atol=1e-9)


def test_step_groups_cap_the_panels():
    assert plots.step_groups([3, 1, 2, 2]) == [(1, 1), (2, 2), (3, 3)]
    groups = plots.step_groups(list(range(1, 41)))
    assert len(groups) <= plots.MAX_PANELS and groups[0] == (1, 4) and groups[-1][1] == 40
    assert plots.step_groups([]) == []


def test_figure_files_are_real_pictures(report: Report):
    out = report.html_path.parent
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f.name for f in FIGURES)
    for spec in FIGURES:
        data = (out / spec.name).read_bytes()
        assert data == report.figures[spec.name]
        img = _png(data)
        assert img.width >= 400 and img.height >= 150
        assert _colours(img) > 20, f"{spec.name} looks blank"


def test_archive_map_marks_occupied_and_empty_cells():
    centroids = np.eye(6, dtype=np.float32)
    full = _png(plots.archive_map(centroids, [0, 1, 2], [0.0, 0.5, 0.9], [True, False, False]))
    empty = _png(plots.archive_map(centroids, [], [], []))
    # A colour bar and coloured dots only exist with generated elites.
    assert _colours(full) > _colours(empty)


# -- the page -------------------------------------------------------------------------------
def test_html_is_self_contained(report: Report):
    page = report.html_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower() and "<link" not in page.lower() and "url(" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|file:|//)""", page)
    srcs = _IMG_SRC.findall(page)
    assert len(srcs) == len(FIGURES)
    for src, spec in zip(srcs, FIGURES, strict=True):
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):]) == report.figures[spec.name]


def test_html_shows_the_run(report: Report):
    page = report.html_path.read_text(encoding="utf-8")
    s = report.summary
    assert f"sparq run {s['run_id']}" in page
    assert f"{s['elites']} / {s['cells']}" in page and f"{s['qd_score']:.3f}" in page
    for e in s["top_elites"]:
        assert e["id"] in page
    assert page.count('<ol class="lineage">') == 1 and page.count("<li") >= 3  # a depth >= 2 example
    # Model output is text, never markup.
    assert HTML_PROBLEM not in page and "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "Is 3 &lt; 5 &amp; 9 &gt; 2?" in page


def test_render_html_escapes_every_field(report: Report):
    evil = "<img src=x onerror=alert(1)>"
    s = dict(report.summary, run_id=evil, run_dir=evil)
    s["top_elites"] = [dict(e, problem=evil, answer=evil) for e in s["top_elites"]]
    s["operators"] = [dict(o, operator=evil) for o in s["operators"]]
    chain = [{"id": evil, "cell": 1, "status": "ok", "depth": 1, "step": 1, "operator": evil, "solve_rate": 0.5,
              "k": 4, "quality": 0.5, "problem": evil, "answer": evil},
             {"id": "s", "cell": 2, "status": "seed", "depth": 0, "step": 0, "operator": "seed", "solve_rate": None,
              "k": 0, "quality": 0.0, "problem": evil, "answer": evil}]
    page = render_html(s, report.figures, chain, datetime(2026, 1, 1, tzinfo=UTC))
    assert evil not in page and "onerror" in page  # present, but only as escaped text
    assert page.count("<img ") == len(FIGURES)


def test_cli_report(report: Report, capsys):
    run_dir = report.html_path.parent.parent
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {report.html_path}"


# -- headless Chromium ---------------------------------------------------------------------
# The report needs no script, but the test adds one to a copy: after the page has loaded it
# reports (as a console error) every image that did not decode, then says it ran. Chromium
# logs console messages and uncaught exceptions to stderr as ":CONSOLE" lines.
_PROBE = ('<script>window.addEventListener("load", () => {'
          ' for (const img of document.images) { if (!img.complete || img.naturalWidth === 0)'
          ' console.error("image not rendered: " + img.alt); }'
          ' console.log("probe done: " + document.images.length + " images"); });</script>')


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120)


def _console(stderr: str) -> list[str]:
    return [ln.split(":CONSOLE", 1)[1] for ln in stderr.splitlines() if ":CONSOLE" in ln]


def _with_probe(html: str) -> str:
    assert html.count("</body>") == 1
    return html.replace("</body>", _PROBE + "</body>")


chromium_only = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")


@chromium_only
def test_console_error_detection_works(tmp_path: Path):
    # The check below must be able to fail: a missing image and a broken script are reported.
    bad = tmp_path / "bad.html"
    bad.write_text(_with_probe('<!DOCTYPE html><html><body><img alt="gone" src="missing.png">'
                               "<script>nosuchfunction();</script></body></html>"))
    console = _console(_chromium(bad, tmp_path / "profile", "--dump-dom").stderr)
    assert any("image not rendered: gone" in ln for ln in console), console
    assert any("Uncaught ReferenceError: nosuchfunction" in ln for ln in console), console
    assert any("probe done: 1 images" in ln for ln in console), console


@chromium_only
def test_report_renders_in_chromium(report: Report, tmp_path: Path):
    # Copies alone in an empty directory: anything the page needed besides itself would fail.
    alone = tmp_path / "alone"
    alone.mkdir()
    page = alone / "index.html"
    shutil.copy(report.html_path, page)
    probed = alone / "probed.html"
    probed.write_text(_with_probe(page.read_text(encoding="utf-8")), encoding="utf-8")

    dom = _chromium(probed, tmp_path / "profile1", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = _console(dom.stderr)
    assert len(console) == 1 and f"probe done: {len(FIGURES)} images" in console[0], console
    html = dom.stdout
    assert f"<title>sparq report: {report.summary['run_id']}</title>" in html  # no injected script ran
    assert html.count("<script") == 1 and html.count("<img ") == len(FIGURES)  # only the probe
    assert html.count("<tr>") >= len(report.summary["top_elites"]) + 1

    shot = tmp_path / "screenshot.png"
    proc = _chromium(page, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1280,2000",
                     "--hide-scrollbars")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert not _console(proc.stderr), _console(proc.stderr)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    assert _colours(img) > 200, "screenshot is (nearly) blank"
    # The header band is dark and the page below it light: the stylesheet was applied.
    assert sum(img.getpixel((5, 5))) < 250 and sum(img.getpixel((5, 1990))) > 600


# -- Prefect artifacts (payloads; publishing needs a server) -----------------------------------
def test_artifact_payloads(report: Report):
    s = report.summary
    rows = {r["metric"]: r["value"] for r in overview_rows(s)}
    assert rows["archived"] == s["accepted"] and rows["QD score"] == s["qd_score"]
    assert rows["status ok"] == s["status"]["ok"] and rows["yield sparq_mutate"].startswith(f"{s['accepted']}/30")
    elites = elite_rows(s)
    assert [e["id"] for e in elites] == [e["id"] for e in s["top_elites"]]
    assert all(len(e["problem"]) <= 300 for e in elites)
    md = figures_markdown(report)
    assert md.count("](data:image/png;base64,") == len(FIGURES)
    assert str(report.html_path.parent / "archive-map.png") in md


def test_artifact_keys_are_checked():
    assert check_key("sparq-run-1-figures") == "sparq-run-1-figures"
    for bad in ("Sparq", "sparq_run", "sparq run", "sparq-ü"):
        with pytest.raises(ValueError, match="lowercase letters, digits and dashes"):
            check_key(bad)


def test_summary_of_a_run_without_generated_elites(tmp_path: Path):
    run_dir = make_run(tmp_path, steps=0)
    s = summarize(load_run(run_dir))
    assert s["candidates"] == 0 and s["top_elites"] == [] and s["operators"] == []
    page = build_report(run_dir).html_path.read_text(encoding="utf-8")
    assert "No generated elites yet" in page and "no lineage to show" in page


@pytest.mark.slow  # a throwaway Prefect server: 30-90 s on 2 cores, too long for the fast loop
def test_flow_publishes_the_report(tmp_path: Path):
    # The generate flow against a throwaway Prefect server: RUN/report/ is written and the
    # three artifacts carry the same numbers as `sparq inspect`.
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.generate import generate

    cfg = run_config(tmp_path, steps=2)
    run_dir = tmp_path / "Run_Ünï 1"  # the key must still be lowercase ASCII letters, digits, dashes
    with prefect_test_harness(server_startup_timeout=120):
        generate(run_dir=str(run_dir), config_path=str(cfg))
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts() if a.key}
    key = "sparq-run--n--1"
    assert {f"{key}-overview", f"{key}-top-elites", f"{key}-figures"} <= set(artifacts), sorted(artifacts)
    s = summarize(load_run(run_dir))
    overview = artifacts[f"{key}-overview"].data
    overview = json.loads(overview) if isinstance(overview, str) else overview
    assert {"metric": "QD score", "value": s["qd_score"]} in overview
    top = artifacts[f"{key}-top-elites"].data
    top = json.loads(top) if isinstance(top, str) else top
    assert [row["id"] for row in top] == [e["id"] for e in s["top_elites"]]
    figures = artifacts[f"{key}-figures"].data
    assert figures.count("](data:image/png;base64,") == len(FIGURES)
    assert (run_dir / "report" / "index.html").is_file()
    explorer = (run_dir / "report" / "explore.html").resolve()  # written by the flow, linked from the figures
    assert explorer.is_file() and f"[open explore.html]({explorer.as_uri()})" in figures
