"""The domain interface (pipeline/domains/): math behind it gives the rows it gave before."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.domain_golden import digest, golden_run

GOLDEN = Path(__file__).resolve().parents[3] / "data" / "math_domain_golden.json"


def test_math_behind_the_domain_interface_gives_the_same_rows(tmp_path: Path):
    """A scripted steps-mode campaign (mutate, crossover and harder operators, validity gate,
    unparseable outputs, wrong references) commits the same candidates, attempts and metrics
    as the code before the domain interface (digest written by it: tests/data/).

    The archive cells in the digest come from the embedder (sentence-transformers, torch,
    faiss), so a dependency update can move them without any change here. The digest is
    then rewritten by the code before the interface, in the new environment, and must
    still equal the current code's (done on 2026-12-05, when a fresh install moved the
    cells and 7317a0c's code and the current code gave the same new digest):

        git worktree add /tmp/pre 7317a0c && cd /tmp/pre && PYTHONPATH=. python -c \
          "import json, tempfile, pathlib; from tests.helpers.domain_golden import digest, golden_run; \
           print(json.dumps(digest(golden_run(pathlib.Path(tempfile.mkdtemp()))), indent=2))"
    """
    assert digest(golden_run(tmp_path)) == json.loads(GOLDEN.read_text())


def test_every_domain_kind_has_a_plug_in_and_the_loader_names_a_bad_one():
    import pytest

    from pipeline.config import CHECK_NAMES, DOMAIN_KINDS, ConfigError, DomainConfig, from_dict
    from pipeline.domains import DOMAINS, make_domain

    assert tuple(DOMAINS) == DOMAIN_KINDS
    # The config (below the domains) names each domain's checks; they must be the domain's own.
    assert {k: make_domain(DomainConfig(kind=k)).check_names for k in DOMAINS} == CHECK_NAMES
    with pytest.raises(ConfigError, match=r"domain\.kind.*one of \('math', 'code'\).*'poetry'"):
        from_dict({"domain": {"kind": "poetry"}}, source="c.toml")
    math = make_domain(from_dict({}).domain)
    parsed = math.parse(" What is 5 times 8?\nNew solution: 5 times 8 is 25. The answer is 25.", "New problem:")
    assert parsed.problem == "What is 5 times 8?" and parsed.answer == "25"
    validity = math.check(parsed, math.check_names)
    assert not validity.valid and "arithmetic" in validity.failed
    assert math.messages("Q?", "A.") == [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
