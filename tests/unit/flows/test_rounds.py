"""Rounds (flows/rounds.py): a solver engine of its own, re-scoring that keeps the archive
property, a campaign of rounds killed in each stage and resumed, the report, bad input.

The control-flow tests run the scripted engine with stand-ins for fine-tuning and
evaluation (tests/helpers/rounds_helpers.py); the vLLM test runs the real stages on the embedded
model (docs/rounds.md has the measured campaign)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from tests.conftest import REPO, scripted_config, sparq_cmd, vllm_problem, write_script

RIGHT = [" 12 + 5 = 17. The answer is 17.", " The answer is 56.", " The answer is 18."]
WRONG = [" The answer is 3."]


def _scripted(engine, script: Path):
    """`engine` (a scripted EngineConfig) answering from `script`."""
    from pipeline.config import ScriptedSettings

    return replace(engine, scripted=ScriptedSettings(script=str(script)))


def _campaign(tmp_path: Path, steps: int = 3, solve=None):
    from pipeline.config import load_config
    from pipeline.loop.generate import run_generation

    cfg = load_config(scripted_config(tmp_path, steps=steps, batch=4))
    if solve is not None:
        cfg = replace(cfg, engine=_scripted(cfg.engine, write_script(tmp_path / "gen.json", solve=solve)))
    run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    return cfg


def _own_solver(cfg, tmp_path: Path, solve):
    script = write_script(tmp_path / "solver.json", solve=solve)
    return replace(cfg, solver=replace(cfg.solver, engine="own", own=_scripted(cfg.engine, script)))


def _rescore(tmp_path: Path, cfg):
    from pipeline.loop.campaign import Campaign
    from pipeline.store.storage import RunDir

    with RunDir(tmp_path / "run").locked():
        camp = Campaign.open(tmp_path / "run", config=cfg, resume=True, config_override=True,
                             progress=lambda m: None)
        try:
            return camp.rescore(), camp.population
        finally:
            camp.close()


def test_solver_engine_own_answers_the_solve_requests(tmp_path):
    """The campaign's engine answers 3 to everything; the own solver answers right: every
    attempt is the own solver's (solve rate 1), none the campaign engine's (0)."""
    from pipeline.config import load_config
    from pipeline.loop.generate import run_generation
    from pipeline.store.storage import RunDir

    cfg = load_config(scripted_config(tmp_path, steps=1, batch=4))
    cfg = replace(cfg, engine=_scripted(cfg.engine, write_script(tmp_path / "gen.json", solve=WRONG)))
    run_generation(_own_solver(cfg, tmp_path, RIGHT * 4), tmp_path / "run", show_bar=False,
                   progress=lambda m: None)
    rows = RunDir(tmp_path / "run").read_candidates().to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["solve_rate"] > 0 for r in ok), [(r["problem"], r["solve_rate"]) for r in ok]


def test_solver_engine_is_validated(tmp_path):
    from pipeline.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text('[solver]\nengine = "student"\n')
    with pytest.raises(ConfigError, match=r"solver\.engine.*one of \('campaign', 'own'\)"):
        load_config(path)


def test_rescoring_keeps_the_archive_property_and_frees_easy_cells(tmp_path):
    """Elites that the new solver always solves get quality 0 and lose their cells; the
    snapshot equals the re-derivation from the committed rows, and so do inspection's
    derived elites; the old rows are no longer parents; generation resumes after it."""
    from archives import load_archive
    from pipeline.loop.generate import run_generation
    from pipeline.loop.population import rederive_archive
    from pipeline.read.inspection import derive_elites
    from pipeline.store.storage import RunDir

    cfg = _campaign(tmp_path)
    run = RunDir(tmp_path / "run")
    before, _ = load_archive(run.archive_dir)
    old_ids = {e for e, q in zip(before.data().column("id").to_pylist(), before.data().column("quality").to_pylist(),
                                 strict=True) if q > 0}
    assert len(old_ids) == 3
    metrics, population = _rescore(tmp_path, _own_solver(cfg, tmp_path, [" The answer is 17.", " The answer is 56.",
                                                                           " The answer is 18."] * 10))
    cands = run.read_candidates()
    res = cands.filter(pc.equal(cands["status"], "rescored")).to_pylist()
    assert sorted(r["parent_id"] for r in res) == sorted(old_ids)
    assert metrics.candidates == 0 and metrics.attempts == 3 * cfg.solver.k
    after, state = load_archive(run.archive_dir)
    assert state["step"] == metrics.step == 4
    derived = rederive_archive(after, cands)
    assert sorted(after.data().column("id").to_pylist()) == sorted(derived.data().column("id").to_pylist())
    assert {e["id"] for e in derive_elites(cands)} == set(after.data().column("id").to_pylist())
    held = set(after.data().column("id").to_pylist())
    assert not held & old_ids
    # each re-scored row: the problem always solved now, quality 0, no cell held
    for r in res:
        assert (r["quality"] == 0.0) == (r["solve_rate"] in (0.0, 1.0)), r
        assert (r["id"] in held) == (r["quality"] > 0), r
    assert not old_ids & set(population.pool), "a re-scored elite stays a parent under its old quality"
    assert after.stats.qd_score <= before.stats.qd_score
    summary = run_generation(cfg, tmp_path / "run", resume=True, steps=6, show_bar=False, progress=lambda m: None)
    assert summary["steps"] == 6 and summary["candidates"] == 5 * 4  # the re-scoring step made none


def test_rescoring_with_the_same_solver_keeps_cells_in_band(tmp_path):
    """Re-scored with a solver that still solves 1 in 4: every elite keeps a cell (under
    its new row), coverage is unchanged."""
    from archives import load_archive
    from pipeline.store.storage import RunDir

    cfg = _campaign(tmp_path)
    before, _ = load_archive(RunDir(tmp_path / "run").archive_dir)
    _rescore(tmp_path, cfg)
    after, _ = load_archive(RunDir(tmp_path / "run").archive_dir)
    assert after.stats.num_elites == before.stats.num_elites
    assert after.stats.coverage == before.stats.coverage


def test_explorer_replay_follows_a_rescoring(tmp_path):
    """The explorer replays cell holders from events; after a re-scoring the lost cells go
    back to their seed or empty, as the snapshot says."""
    from archives import load_archive
    from pipeline.read.explore import archive_events, occupancy_after
    from pipeline.store.storage import RunDir

    cfg = _campaign(tmp_path)
    _rescore(tmp_path, _own_solver(cfg, tmp_path, [" The answer is 17.", " The answer is 56.",
                                                    " The answer is 18."] * 10))
    run = RunDir(tmp_path / "run")
    t = run.read_candidates().sort_by([("step", "ascending"), ("slot", "ascending")])
    ev = archive_events(t["step"].to_pylist(), t["status"].to_pylist(), t["quality"].to_pylist(),
                        t["cell"].to_pylist())
    ids = t["id"].to_pylist()
    replay = {ids[i] for i in occupancy_after(ev, 4).values()}
    archive, _ = load_archive(run.archive_dir)
    assert replay == set(archive.data().column("id").to_pylist())


def test_report_helpers():
    from flows.rounds_report import histogram, mean_pairwise_cosine, warnings

    assert histogram([0.0, 0.125, 0.5, 1.0, 0.95]) == [1, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert mean_pairwise_cosine(e) == pytest.approx(1 / 3)
    assert mean_pairwise_cosine(e[:1]) is None
    prev = {"valid_share": 0.8, "elite_cosine": 0.30}
    assert warnings(prev, {"valid_share": 0.75, "elite_cosine": 0.33}, 0.10, 0.05) == []
    got = warnings(prev, {"valid_share": 0.6, "elite_cosine": 0.40}, 0.10, 0.05)
    assert len(got) == 2 and "valid share fell" in got[0] and "alike" in got[1]


def test_rounds_config_errors(tmp_path):
    from flows.rounds import load_rounds_config
    from pipeline.config import ConfigError

    bad = tmp_path / "r.toml"
    bad.write_text('[rounds]\ntune = "generator"\n')
    with pytest.raises(ConfigError, match=r"rounds\.tune.*one of \('solver', 'both'\)"):
        load_rounds_config(bad)
    bad.write_text('[rounds]\nround = 3\n')
    with pytest.raises(ConfigError, match="unknown config key 'rounds.round'"):
        load_rounds_config(bad)
    out = subprocess.run(sparq_cmd("rounds", str(tmp_path / "d"), "--config", str(bad)), cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "sparq: error:" in out.stderr and "rounds.round" in out.stderr


def _rounds_setup(tmp_path: Path, rounds: int = 2) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    gen = scripted_config(tmp_path, steps=2, batch=4)
    # The real export, without the decontamination's embedding of the held-out split (10 s
    # a round on 2 cores; what is under test here is the rounds' control flow).
    export = tmp_path / "export.toml"
    export.write_text('[export]\nscheduler = "sync"\n[export.decontam]\nenabled = false\n')
    cfg = tmp_path / "rounds.toml"
    cfg.write_text(f'[rounds]\nrounds = {rounds}\nsteps_per_round = 2\ngenerate_config = "{gen}"\n'
                   f'export_config = "{export}"\n')
    return cfg


def _run_helper(directory: Path, config: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SPARQ_ROUNDS_CRASH_AT"}
    if crash:
        env["SPARQ_ROUNDS_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "tests.helpers.rounds_helpers", str(directory), str(config)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


def _check_finished(directory: Path, rounds: int, steps: int) -> None:
    from archives import load_archive
    from pipeline.loop.population import rederive_archive
    from pipeline.store.storage import RunDir

    state = json.loads((directory / "state.json").read_text())
    assert state["round"] == rounds and state["stage"] == "done"
    for r in range(1, rounds + 1):
        d = directory / f"round-{r:02d}"
        assert (d / "eval.json").is_file() and (d / "round.json").is_file() and (d / "data" / "README.md").is_file()
        assert (d / "model" / "trained.json").is_file()
    run = RunDir(directory / "run")
    assert run.read_checkpoint().step == steps
    cands = run.read_candidates()
    assert pc.sum(pc.equal(cands["status"], "rescored")).as_py() > 0
    archive, st = load_archive(run.archive_dir)
    assert st["step"] == steps
    assert sorted(archive.data().column("id").to_pylist()) == sorted(
        rederive_archive(archive, cands).data().column("id").to_pylist())
    rows = json.loads((directory / "rounds.json").read_text())
    assert [x["round"] for x in rows] == list(range(rounds + 1))
    assert rows[1]["vs_base"]["difference"] > 0  # the stand-in tuned model answers one more problem
    assert "| 2 |" in (directory / "report.md").read_text()
    assert not list(directory.rglob("*.tmp*"))


@pytest.mark.ci
def test_rounds_campaign_killed_in_each_stage_resumes_in_that_stage(tmp_path):
    """One campaign of 2 rounds, SIGKILLed once in every stage (the base evaluation,
    generate, export, finetune, evaluate, report, re-scoring), each time after the stage's
    work and before state.json records it; each restart resumes in the killed stage, and
    the finished campaign is whole: 2 x 2 generation steps + 1 re-scoring step, the archive
    property, every round's data, model, evaluation and report."""
    config = _rounds_setup(tmp_path)
    directory = tmp_path / "dir"
    kills = ["evaluate:0", "generate:1", "export:1", "finetune:1", "evaluate:1", "report:1", "rescore:2",
             "generate:2", "export:2", "finetune:2", "evaluate:2", "report:2"]
    for crash in kills:
        out = _run_helper(directory, config, crash)
        assert out.returncode == -signal.SIGKILL, (crash, out.returncode, out.stderr[-2000:])
        stage, r = crash.split(":")
        state = json.loads((directory / "state.json").read_text()) if (directory / "state.json").exists() else None
        if state is not None:  # the killed stage is still the one to do
            assert (state["round"], state["stage"]) == (int(r), stage) or (r == "0" and state["round"] == 0), state
    out = _run_helper(directory, config)
    assert out.returncode == 0, out.stderr[-3000:]
    _check_finished(directory, rounds=2, steps=5)


def test_rounds_campaign_runs_and_extends(tmp_path):
    """An uninterrupted campaign of 2 rounds, then extended to 3 with --rounds semantics
    (a raised round count continues a finished campaign)."""
    from flows.rounds import load_rounds_config, run_rounds
    from tests.helpers.rounds_helpers import stages

    config = _rounds_setup(tmp_path)
    directory = tmp_path / "dir"
    rows = run_rounds(directory, load_rounds_config(config), stages=stages(), log=lambda m: None)
    assert [x["round"] for x in rows] == [0, 1, 2]
    _check_finished(directory, rounds=2, steps=5)
    rows = run_rounds(directory, load_rounds_config(config, rounds=3), stages=stages(), log=lambda m: None)
    assert [x["round"] for x in rows] == [0, 1, 2, 3]
    _check_finished(directory, rounds=3, steps=8)
    assert rows[3]["rescore"]["elites_rescored"] >= 1


def test_tune_both_makes_the_tuned_model_generator_and_solver(tmp_path):
    """tune = "both": from round 2 the campaign's own engine is the tuned model (SPARQ's
    single model) and solves too; with "solver" the base generates and the tuned model
    solves through [solver.own]."""
    from flows.rounds import load_rounds_config, run_rounds
    from pipeline.config import load_config
    from tests.helpers.rounds_helpers import stages

    for tune in ("both", "solver"):
        config = _rounds_setup(tmp_path / tune)
        text = config.read_text().replace("[rounds]\n", f'[rounds]\ntune = "{tune}"\n')
        config.write_text(text)
        directory = tmp_path / tune / "dir"
        run_rounds(directory, load_rounds_config(config), stages=stages(), log=lambda m: None)
        saved = load_config(directory / "run" / "config.toml")
        model = str(directory / "round-01" / "model")
        if tune == "both":
            assert saved.engine.model == model and saved.solver.engine == "campaign"
        else:
            assert saved.engine.model != model and saved.solver.engine == "own" and saved.solver.own.model == model


@pytest.mark.vllm
@pytest.mark.vllm_exclusive  # round 2: the campaign's engine and the tuned solver's
@pytest.mark.ci
@pytest.mark.slow
def test_rounds_on_vllm_through_the_prefect_flow(tmp_path):
    """Two short rounds on the embedded model with every real stage (vLLM generation and
    evaluation, the export, LoRA fine-tuning): the tuned model of round 1 loads in vLLM and
    re-scores and solves in round 2."""
    if vllm_problem() and not os.environ.get("CI"):
        pytest.skip(vllm_problem())
    ft = tmp_path / "ft.toml"
    ft.write_text("[train]\nmax_steps = 1\n[evaluate]\nlimit = 6\nn = 2\nk = 2\n")
    cfg = tmp_path / "rounds.toml"
    cfg.write_text(f'[rounds]\nrounds = 2\nsteps_per_round = 2\nfinetune_config = "{ft}"\n')
    directory = tmp_path / "dir"
    out = subprocess.run(sparq_cmd("rounds", str(directory), "--config", str(cfg)), cwd=REPO, capture_output=True,
                         text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-4000:]
    rows = json.loads((directory / "rounds.json").read_text())
    assert [x["round"] for x in rows] == [0, 1, 2]
    state = json.loads((directory / "state.json").read_text())
    from pipeline.store.storage import RunDir

    cands = RunDir(directory / "run").read_candidates()
    res = cands.filter(pc.equal(cands["status"], "rescored"))
    if state["rounds"]["1"].get("tuned"):
        assert res.num_rows >= 1 and set(res["solver"].to_pylist()) != {None}
        assert rows[1]["pass@1"] is not None and rows[2]["rescore"] is not None


def test_explorer_shows_the_rounds_panel(tmp_path):
    """The explorer of a rounds campaign's run shows a Rounds panel with a row per round
    (the base and each tuned model) in a real browser; a run of its own shows none."""
    from flows.rounds import load_rounds_config, run_rounds
    from pipeline.read.explore import rounds_of, write_explorer
    from tests.helpers.rounds_helpers import stages
    from tests.unit.pipeline.read.test_explore import Opened, _require_browser, expect

    config = _rounds_setup(tmp_path, rounds=1)
    directory = tmp_path / "dir"
    run_rounds(directory, load_rounds_config(config), stages=stages(), log=lambda m: None)
    rows = rounds_of(directory / "run")
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["base"] is not None
    assert rounds_of(tmp_path / "elsewhere" / "run") is None
    _require_browser()
    from playwright.sync_api import sync_playwright

    from tests.unit.pipeline.read.test_explore import CHROMIUM, CHROMIUM_ARGS

    page = write_explorer([directory / "run"], tmp_path / "page.html").path
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            o = Opened(b, page)
            expect(o.page.locator("#rounds-pane")).to_be_visible()
            expect(o.page.locator("#rounds tbody tr")).to_have_count(2)
            assert "base" in o.page.inner_text("#rounds tbody tr:first-child")
            assert o.page.inner_text("#rounds tbody tr:nth-child(2) td:nth-child(6)").startswith("+")
            assert o.errors == []
            o.close()
        finally:
            b.close()
