"""`sparq export` end to end: scripted and synthetic runs, TRL rows, every decision counted,
a LocalCluster run equal to the in-process one, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from filters.config import export_config_from_dict
from filters.errors import ExportConfigError, ExportInputError
from filters.export import export_runs
from filters.schema import DATA_SCHEMA, REJECTED_SCHEMA
from pipeline.config import load_config
from pipeline.loop.generate import run_generation
from pipeline.store.records import Status, candidate_id
from pipeline.store.storage import RunDir, RunError
from tests.conftest import REPO, sparq_cmd, write_config, write_script
from tests.helpers.export_helpers import DIM, cand, fake_embed, write_run

HELDOUT_0 = "Compute 6 * 9."  # the first item of pipeline/data/eval/heldout.jsonl
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def _cfg(**over):
    data = {"scheduler": "sync"} | over
    return export_config_from_dict(data)


def _table(out: Path, kind: str) -> pa.Table:
    files = sorted(str(p) for p in (out / kind).glob("*.parquet"))
    schema = DATA_SCHEMA if kind == "data" else REJECTED_SCHEMA
    return pads.dataset(files, schema=schema, format="parquet").to_table() if files else schema.empty_table()


def test_checks_filter_drops_rows_the_validity_checks_marked_invalid(tmp_path: Path):
    # gate "export": an invalid row is archived and ok, and dropped here; gate "archive": it
    # is committed with status "invalid". Both are counted under the check that failed.
    from dataclasses import replace as dc_replace

    s = list(SURVIVORS)
    wrong = dc_replace(cand("a", 1, 1, "What is 5 times 8?", sr=0.25, cell=1), valid=False,
                       invalid_checks="arithmetic,problem_expression",
                       validity_reason="arithmetic: 5 * 8 = 25 is false (5 * 8 = 40)")
    gated = dc_replace(cand("a", 1, 2, "How many pages does the chapter have?", status=Status.INVALID, sr=None,
                            agrees=None, cell=None), valid=False, invalid_checks="grounding",
                       validity_reason="grounding: ill-posed: the problem gives no numbers")
    good = dc_replace(cand("a", 1, 0, s[0], sr=SURVIVORS[s[0]], cell=0), valid=True)
    run = write_run(tmp_path / "a", [[cand("a", 0, 0, "Seed?", status=Status.SEED, sr=None, agrees=None)],
                                     [good, wrong, gated]], centroids=CENTROIDS)
    res = export_runs([run], tmp_path / "out", config=_cfg(), embed=fake_embed)
    counts = {f.name: (f.seen, f.rejected) for f in res.funnel}
    assert counts["checks"] == (4, 2)
    rejected = _table(tmp_path / "out", "rejected").to_pylist()
    why = {r["id"]: (r["filter"], r["filter_reason"], r["filter_detail"]) for r in rejected}
    assert why[wrong.id] == ("checks", "invalid_arithmetic", wrong.validity_reason)
    assert why[gated.id] == ("checks", "invalid_grounding", gated.validity_reason)
    assert good.id not in why
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| checks | `invalid_arithmetic` | 1 |" in card and "| checks | `invalid_grounding` | 1 |" in card
    # [export.validity] checks = false keeps them past this filter (the status filter still
    # drops the gated one).
    res = export_runs([run], tmp_path / "out2", config=_cfg(validity={"checks": False}), embed=fake_embed)
    assert "checks" not in {f.name for f in res.funnel}


# -- a synthetic pair of runs in which every filter has something to do ------------------

CENTROIDS = np.eye(4, DIM, dtype=np.float32)
SURVIVORS = {
    "A farmer has 12 cows and buys 5 more. How many cows does he have now?": 0.25,
    "A tank holds 40 litres and leaks 3 litres an hour. How long until it is empty?": 0.5,
    "Sam reads 21 pages in 3 days. How many pages per day does he read?": 0.75,
}


def _runs(tmp_path: Path) -> list[Path]:
    s = list(SURVIVORS)
    a = [[cand("a", 0, 0, "Seed problem one?", status=Status.SEED, sr=None, agrees=None)],
         [cand("a", 1, 0, s[0], sr=SURVIVORS[s[0]], cell=0),
          cand("a", 1, 0, "An easy one: what is 1 + 1?", sr=1.0, cell=1),                      # difficulty
          cand("a", 1, 0, "A wrong reference: what is 2 + 5?", sr=0.5, agrees=False, cell=1),  # validity
          cand("a", 1, 0, None, status=Status.UNPARSEABLE, sr=None, agrees=None, cell=None),  # status
          cand("a", 1, 0, "Compute 71 * 3.", sr=0.5, cell=2)],                                 # decontamination
         [cand("a", 2, 0, "  a FARMER has 12 cows and buys 5 more.  How many cows does he have now?", sr=0.5,
               cell=0),                                                                        # exact dup (worse)
          cand("a", 2, 0, s[1], sr=SURVIVORS[s[1]], cell=3)]]
    b = [[cand("b", 0, 0, "Seed problem two?", status=Status.SEED, sr=None, agrees=None)],
         [cand("b", 1, 0, s[2], sr=SURVIVORS[s[2]], cell=3),
          # same words, another order: cosine 1 with the fake embedder, worse quality -> near dup
          cand("b", 1, 0, "In 3 days Sam reads 21 pages. How many pages per day does he read?", sr=0.9, cell=3)]]
    return [write_run(tmp_path / "a", a, centroids=CENTROIDS), write_run(tmp_path / "b", b, centroids=CENTROIDS)]


def test_every_filter_counted_and_every_row_kept(tmp_path: Path):
    runs = _runs(tmp_path)
    res = export_runs(runs, tmp_path / "out", config=_cfg(), embed=fake_embed)
    counts = {f.name: (f.seen, f.rejected) for f in res.funnel}
    assert counts == {"checks": (11, 0), "status": (11, 3), "difficulty": (8, 1), "validity": (7, 1), "pairs": (6, 0),
                      "embedding": (6, 0), "decontamination": (6, 1), "exact_dedup": (5, 1), "near_dup": (4, 1)}
    data, rejected = _table(tmp_path / "out", "data"), _table(tmp_path / "out", "rejected")
    # max_per_problem = 1: one pair per surviving problem, the other correct attempts rejected as a cap.
    assert sorted(m[0]["content"] for m in data["messages"].to_pylist()) == sorted(SURVIVORS)
    assert set(data["source"].to_pylist()) == {"student"}
    for row in data.to_pylist():
        assert row["messages"][1]["content"].endswith("The answer is 7.")
        assert row["solve_rate"] == SURVIVORS[row["messages"][0]["content"]] and row["run"] in ("a", "b")
    by_filter = {}
    for r in rejected.to_pylist():
        assert r["filter"] and r["filter_reason"] and r["filter_detail"], r
        by_filter.setdefault(r["filter"], []).append(r)
    assert {k: len(v) for k, v in by_filter.items()} == {
        "status": 3, "difficulty": 1, "validity": 1, "decontamination": 1, "exact_dedup": 1, "near_dup": 1,
        "selection": 1 + 2 + 3 - 3}  # correct attempts beyond the first: sr .25/.5/.75 of k=4 -> 1+2+3 pairs
    leak = by_filter["decontamination"][0]
    assert leak["matched"] == f"heldout:arithmetic-0001: {HELDOUT_0}" and leak["filter_reason"] == "benchmark_leak"
    assert "n-gram overlap 1.00" in leak["filter_detail"]
    assert by_filter["exact_dedup"][0]["matched"] == candidate_id("a", 1, 0)  # the better copy, kept
    assert "near duplicate of" in by_filter["near_dup"][0]["filter_detail"]
    reasons = {(r["filter"], r["filter_reason"]) for r in rejected.to_pylist()}
    assert reasons >= {("difficulty", "solve_rate_above_band"), ("exact_dedup", "exact_duplicate"),
                       ("selection", "per_problem_cap")}
    assert all(r["content"] and r["attempt"] is not None for r in by_filter["selection"])
    # Nothing dropped: every candidate row is in the data or rejected at candidate level.
    ids = {r["id"] for run in runs for r in RunDir(run).read_candidates().to_pylist()}
    assert ids == set(data["id"].to_pylist()) | {r["id"] for r in rejected.to_pylist() if r["filter"] != "selection"}
    assert res.data_rows == 3 and res.rejected_rows == rejected.num_rows
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| decontamination | 6 | 1 | 5 |" in card and "| near_dup | 4 | 1 | 3 |" in card
    # Rejections per reason add up to every rejected row.
    per_reason = [line.split(" | ") for line in card.splitlines() if line.startswith("| ") and " | `" in line]
    assert sum(int(cols[2]) for cols in per_reason) == rejected.num_rows
    assert "| near_dup | `near_duplicate` | 1 |" in card
    assert HELDOUT_0 in card and "Compute 71 * 3." in card
    assert "[0.2, 0.3)" in card and "3 cells hold output rows" not in card  # cells 0 and 3: two cells
    assert "2 cells hold output rows" in card


def test_selection_budget_caps_and_generator_source(tmp_path: Path):
    runs = _runs(tmp_path)
    cfg = _cfg(sources=["generator", "student"], max_per_problem=2, selection="quality")
    res = export_runs(runs, tmp_path / "out", config=cfg, budget=4, embed=fake_embed)
    data = _table(tmp_path / "out", "data")
    assert res.data_rows == 4 and data.num_rows == 4
    # Quality first: sr .25 (q .75) then .5 (q .5): both their pairs, generator solution first.
    assert sorted(data["solve_rate"].to_pylist()) == [0.25, 0.25, 0.5, 0.5]
    assert sorted(data["source"].to_pylist()) == ["generator", "generator", "student", "student"]
    gen = [m[1]["content"] for m, s in zip(data["messages"].to_pylist(), data["source"].to_pylist(), strict=True)
           if s == "generator"]
    assert gen == ["Work it out. The answer is 7."] * 2
    rejected = _table(tmp_path / "out", "rejected")
    details = [r for r in rejected["filter_detail"].to_pylist() if r.startswith(("over budget", "per-problem"))]
    assert "over budget (4)" in details and "per-problem cap (2)" in details
    assert {"over_budget", "per_problem_cap"} <= set(rejected["filter_reason"].to_pylist())
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| budget |" in card and "generator 2, student 2" in card


# -- the real pipeline's runs, TRL and datasets -------------------------------------------

STORIES = ["Ann has 10 marbles and gives away 3. How many marbles does she have left?",
           "A train travels 14 km in 2 hours. What is its speed in km per hour?",
           "What is the remainder when 23 is divided by 8?",
           "A baker makes 42 rolls and packs them in bags of 6. How many bags does she fill?",
           "Tickets cost 5 dollars each. Sam pays 35 dollars. How many tickets does he buy?",
           "Lena reads 21 pages in 3 days, the same each day. How many pages does she read per day?"]


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed scripted run whose problems (answer 7) are solved 2 times in 4: all in the band."""
    base = tmp_path_factory.mktemp("scripted")
    script = write_script(base / "script.json", mutate=[f" {p}\nNew solution: It is 7. The answer is 7." for p in
                                                       STORIES],
                          solve=[" The answer is 7.", " The answer is 3.", " The answer is 7.", " The answer is 2."])
    cfg = write_config(base / "config.toml", f"""
[run]
steps = 2
batch_size = 3
[seeds]
limit = 8
[engine]
kind = "scripted"
[engine.scripted]
script = "{script}"
[solver]
k = 4
[archive]
cells = 16
""")
    run_generation(load_config(cfg), base / "run", show_bar=False, progress=lambda m: None)
    return base / "run"


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for s in STORIES + ["It is 7. The answer is 7."] for w in s.replace(".", " . ").split()})
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "<eos>", "<bos>", *words])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", eos_token="<eos>",
                                  bos_token="<bos>")
    # {% generation %} marks the assistant tokens, so assistant_only_loss can mask the prompt.
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}"
                         "{{ m['content'] }}<eos>{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}"
                         "{% endfor %}")
    return tok, len(vocab)


def test_scripted_run_gives_rows_datasets_and_trl_accept(scripted_run: Path, tmp_path: Path):
    import datasets
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer
    from trl.data_utils import apply_chat_template, is_conversational

    out = tmp_path / "out"
    # The run's own embedder (the bundled MiniLM) embeds the held-out split: default embed.
    res = export_runs([scripted_run], out, config=_cfg())
    assert res.data_rows >= 4
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert len(ds) == res.data_rows
    assert {"messages", "problem_id", "cell", "solve_rate", "quality", "run", "step", "source"} <= set(ds.column_names)
    assert datasets.load_dataset(str(out), split="train").num_rows == res.data_rows  # the card's YAML configs
    assert datasets.load_dataset(str(out), "rejected", split="train").num_rows == res.rejected_rows
    tok, vocab = _tiny_tokenizer()
    for row in ds:
        assert is_conversational(row)
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][0]["content"] in STORIES and 0.1 <= row["solve_rate"] <= 0.9
        assert apply_chat_template(row, tok)["text"].endswith("The answer is 7.<eos>")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=128))
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", assistant_only_loss=True, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    first = trainer.train_dataset[0]
    assert -100 in first["labels"] and first["labels"][-1] == tok.eos_token_id  # prompt masked, answer trained
    assert np.isfinite(trainer.train().training_loss)


# -- the same result on a dask cluster -------------------------------------------------------


def _many_runs(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    runs = []
    for r in range(2):
        steps = [[cand("x", 0, 0, "Seed?", status=Status.SEED, sr=None, agrees=None)]]
        for step in range(1, 5):
            rows = []
            for i in range(12):
                sr = float(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]))
                word = ["alpha", "beta", "gamma", "delta", "eps"][i % 5]
                text = f"Batch {word} {r} {step} {i} holds {i} widgets; seven more arrive. Count the widgets."
                # Random embeddings (the fake embedder ignores numbers: these texts would all be
                # near-duplicates), with every 7th row a near copy of the row before it.
                emb = rng.standard_normal(DIM) if i % 7 != 6 else rows[-1].embedding + 0.01 * rng.standard_normal(DIM)
                emb = np.asarray(emb) / np.linalg.norm(emb)
                rows.append(cand("x", step, 0, text, sr=sr, cell=int(rng.integers(0, 4)),
                                 agrees=bool(rng.random() > 0.1), embedding=emb))
            steps.append(rows)
        runs.append(write_run(tmp_path / f"r{r}", steps, centroids=CENTROIDS))
    return runs


def _snapshot(out: Path) -> tuple[list[dict], list[dict], str]:
    data = _table(out, "data").to_pylist()
    rej = sorted(_table(out, "rejected").to_pylist(), key=lambda r: (r["id"], r["filter"], r["attempt"] or -1))
    card = (out / "README.md").read_text()
    return data, rej, card.split("## Timing")[0].replace(str(out), "OUT")


def test_local_cluster_equals_single_process(tmp_path: Path):
    from distributed import LocalCluster

    runs = _many_runs(tmp_path)
    # IVF near-duplicate search (exact_below 0) and diversity selection at a budget, as at scale.
    over = {"near_dup": {"exact_below": 0, "nlist": 4, "nprobe": 2, "threshold": 0.9}, "max_per_problem": 2,
            "budget": 40}
    single = export_runs(runs, tmp_path / "single", config=_cfg(**over), embed=fake_embed)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dist = export_runs(runs, tmp_path / "dist", config=_cfg(**over), embed=fake_embed,
                           dask_address=cluster.scheduler_address)
    assert single.data_rows == dist.data_rows == 40
    a, b = _snapshot(tmp_path / "single"), _snapshot(tmp_path / "dist")
    assert a[0] == b[0] and a[1] == b[1]
    assert a[2].replace("dist", "single") == b[2].replace("dist", "single")
    assert sorted(p.name for p in (tmp_path / "single" / "data").iterdir()) == \
        sorted(p.name for p in (tmp_path / "dist" / "data").iterdir())
    # And the local process pool (the default scheduler) agrees too.
    procs = export_runs(runs, tmp_path / "procs", config=_cfg(**over, scheduler="processes", workers=2),
                        embed=fake_embed)
    assert procs.data_rows == 40 and _snapshot(tmp_path / "procs")[:2] == a[:2]


# -- bad input ---------------------------------------------------------------------------


def test_missing_shard_fails_naming_it_or_is_skipped_and_counted(tmp_path: Path):
    runs = _runs(tmp_path)
    lost = runs[0] / "attempts" / "step-000002.parquet"
    lost.unlink()
    with pytest.raises(ExportInputError, match=str(lost)):
        export_runs(runs, tmp_path / "out", config=_cfg(), embed=fake_embed)
    res = export_runs(runs, tmp_path / "out2", config=_cfg(), embed=fake_embed, skip_corrupt=True)
    assert [(s.path, s.rows) for s in res.skipped] == [(str(lost), 2)]
    assert res.candidates == 11 - 2  # step 2 of run a (2 rows) is not read
    card = (tmp_path / "out2" / "README.md").read_text()
    assert "1 file(s) skipped with --skip-corrupt; 2 candidate rows lost" in card and str(lost) in card


def test_corrupt_shard_fails_naming_it_or_is_skipped(tmp_path: Path):
    runs = _runs(tmp_path)
    bad = runs[1] / "candidates" / "step-000001.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(ExportInputError, match=f"{bad}: unreadable Parquet"):
        export_runs(runs, tmp_path / "out", config=_cfg(), embed=fake_embed)
    res = export_runs(runs, tmp_path / "out2", config=_cfg(), embed=fake_embed, skip_corrupt=True)
    assert [s.path for s in res.skipped] == [str(bad)] and res.candidates == 11 - 2
    assert res.data_rows == 2  # run b's survivor is gone with its shard


def test_corrupt_data_pages_are_caught_at_read(tmp_path: Path):
    runs = _runs(tmp_path)
    shard = runs[0] / "candidates" / "step-000001.parquet"
    raw = bytearray(shard.read_bytes())
    # Keep the magic bytes and the footer (its length is in the 4 bytes before the final magic);
    # scramble the column chunks, so only reading the data can tell.
    footer = int.from_bytes(raw[-8:-4], "little")
    for i in range(4, len(raw) - 8 - footer):
        raw[i] = (raw[i] * 31 + 7) % 256
    shard.write_bytes(bytes(raw))
    with pytest.raises(ExportInputError, match=str(shard)):
        export_runs(runs, tmp_path / "out", config=_cfg(), embed=fake_embed)
    res = export_runs(runs, tmp_path / "out2", config=_cfg(), embed=fake_embed, skip_corrupt=True)
    assert [s.path for s in res.skipped] == [str(shard)] and res.skipped[0].rows == 5


def test_uncommitted_files_are_ignored_not_read(tmp_path: Path):
    runs = _runs(tmp_path)
    later = runs[0] / "candidates" / "step-000003.parquet"  # past the checkpoint (step 2)
    later.write_bytes(b"garbage of a step that never committed")
    tmp = runs[0] / "candidates" / ".step-000002.parquet.tmp-123"
    tmp.write_bytes(b"garbage")
    res = export_runs(runs, tmp_path / "out", config=_cfg(), embed=fake_embed)
    assert res.candidates == 11 and not res.skipped
    card = (tmp_path / "out" / "README.md").read_text()
    assert "2 uncommitted file(s)" in card and str(later) in card


def test_other_bad_input(tmp_path: Path):
    runs = _runs(tmp_path)
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"question": "What is 2 + 2?"}\n')
    cfg = _cfg(decontam={"benchmarks": [{"name": "mine", "source": str(bench), "column": "problem"}]})
    with pytest.raises(ExportInputError, match=f"{bench}.*no column 'problem'"):
        export_runs(runs, tmp_path / "o1", config=cfg, embed=fake_embed)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ExportInputError, match="not empty"):
        export_runs(runs, tmp_path / "full", config=_cfg(), embed=fake_embed)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportInputError, match="no checkpoint.json"):
        export_runs([tmp_path / "empty"], tmp_path / "o2", config=_cfg(), embed=fake_embed)
    with pytest.raises(ExportConfigError, match="export.decontam.embedder"):
        export_runs(runs, tmp_path / "o3", config=_cfg(decontam={"embedder": "other-model"}), embed=fake_embed)
    (runs[0] / "checkpoint.json").write_text("{not json")
    with pytest.raises(RunError, match="checkpoint"):
        export_runs(runs, tmp_path / "o4", config=_cfg(), embed=fake_embed)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(sparq_cmd("export", *args), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=600)


def _one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("sparq: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli(tmp_path: Path):
    runs = _runs(tmp_path)
    cfg = tmp_path / "e.toml"
    cfg.write_text("[export]\nscheduler = 'sync'\n[export.decontam]\nenabled = false\n")
    proc = _cli(*map(str, runs), "--out", str(tmp_path / "out"), "--config", str(cfg), "--budget", "2")
    assert proc.returncode == 0, proc.stderr
    assert "exported 2 rows from 11 candidates" in proc.stdout
    assert len(list((tmp_path / "out" / "data").glob("*.parquet"))) >= 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[export]\nbudgit = 3\n")
    _one_line_error(_cli(str(runs[0]), "--out", str(tmp_path / "o"), "--config", str(bad)), "export.budgit")
    (runs[0] / "candidates" / "step-000001.parquet").unlink()
    _one_line_error(_cli(str(runs[0]), "--out", str(tmp_path / "o"), "--config", str(cfg)), "step-000001.parquet")
    proc = _cli(str(runs[0]), "--out", str(tmp_path / "o5"), "--config", str(cfg), "--skip-corrupt")
    assert proc.returncode == 0 and "1 files skipped" in proc.stdout
    _one_line_error(_cli(str(runs[0]), "--out", str(tmp_path / "o6"), "--budget", "-1"), "--budget")


def test_prefect_flow_publishes_the_card(tmp_path: Path):
    from flows.export import artifact_key, card_markdown, export

    runs = _runs(tmp_path)
    cfg = tmp_path / "e.toml"
    cfg.write_text("[export]\nscheduler = 'sync'\n[export.decontam]\nenabled = false\n")
    summary = export([str(r) for r in runs], str(tmp_path / "out"), config_path=str(cfg))
    assert summary["data_rows"] == 4 and summary["skipped"] == 0  # decontamination off: 'Compute 71 * 3.' stays
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\n") and card_markdown(card).startswith("# sparq-qd export")
    assert artifact_key(str(tmp_path / "My Out_1")) == "sparq-export-my-out-1"


def test_library_does_not_import_prefect_or_torch():
    code = ("import sys, filters.export, filters.card, filters.scan, filters.write; "
            "bad = [m for m in ('prefect', 'torch', 'sentence_transformers') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
