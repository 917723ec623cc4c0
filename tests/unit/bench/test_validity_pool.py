"""bench/validity_pool.py: campaigns pooled for one blind labelling, and the labels scored
back onto each campaign's archived problems and tokens."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipeline.read.inspection import ARCHIVED
from pipeline.store.storage import RunDir
from tests.helpers.domain_golden import golden_run

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import validity_pool  # noqa: E402


def test_wilson_interval():
    lo, hi = validity_pool.wilson(58, 72)
    assert 0.69 < lo < 0.71 and 0.88 < hi < 0.89
    assert validity_pool.wilson(0, 0) == (0.0, 1.0)


def test_pool_and_score_round_trip(tmp_path: Path):
    (tmp_path / "campaign").mkdir()
    run = golden_run(tmp_path / "campaign")  # a scripted campaign: archived, invalid, unparseable rows
    cands = [c for c in RunDir(run).read_candidates().to_pylist() if c["step"] > 0]
    archived = [c for c in cands if c["status"] == "ok" and c["archive_outcome"] in ARCHIVED]
    assert archived
    pool = tmp_path / "pool"
    validity_pool.pool(pool, [run, run], readers=2, shuffle_seed=0)
    items = [json.loads(line) for line in (pool / "items.jsonl").read_text().splitlines()]
    key = [json.loads(line) for line in (pool / "key.jsonl").read_text().splitlines()]
    # a problem two campaigns archived is labelled once, and the key says both
    assert len({(i["problem"], i["solution"], i["answer"]) for i in items}) == len(items)
    assert sum(k["archived"] for k in key) == 2 * len(archived)
    chunks = [json.loads(line) for name in ("a", "b")
              for line in (pool / f"chunk-{name}.jsonl").read_text().splitlines()]
    assert sorted(c["item"] for c in chunks) == [i["item"] for i in items]
    assert not any("id" in c or "run" in c for c in chunks)  # blind: no run, no candidate

    # every problem valid but the first: the score counts archived rows per campaign
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"item": i["item"], "label": "invalid" if i["item"] == 0 else "valid"}) + "\n"
                              for i in items))
    lines = validity_pool.score(pool, labels, [run, run])
    first_archived = any(k["item"] == 0 and k["archived"] for k in key)
    valid = len(archived) - (1 if first_archived else 0)
    tokens = sum((c["gen_tokens"] or 0) + (c["solve_tokens"] or 0) + (c["verify_tokens"] or 0) for c in cands)
    assert f"Pooled: {2 * valid} of {2 * len(archived)} archived problems valid" in lines[-1]
    assert f"{2 * tokens} tokens" in lines[-1]

    labels.write_text(json.dumps({"item": 0, "label": "valid"}) + "\n")
    with pytest.raises(SystemExit, match="has no label for items"):
        validity_pool.score(pool, labels, [run, run])
