"""The CPU top-p of pipeline/engines/vllm_sampling.py gives vLLM's own masks, without the sort.

vLLM's `apply_top_k_top_p_pytorch` is the reference: on the same logits, k and p, the set
of tokens left finite must be the same row by row, on distributions peaked enough for the
bound (the fast path) and flat enough to need the full sort (the fallback).
"""

from __future__ import annotations

import importlib.metadata

import pytest

pytestmark = pytest.mark.vllm

VOCAB = 262_144  # Gemma 3's vocabulary: the size the sort is slow at


@pytest.fixture(scope="module")
def reference():
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    return apply_top_k_top_p_pytorch


def masks(reference, logits, k, p):
    from pipeline.engines import vllm_sampling

    before = vllm_sampling.fallbacks
    ours = vllm_sampling.apply_top_k_top_p(logits.clone(), None if k is None else k.clone(), p.clone())
    theirs = reference(logits.clone(), None if k is None else k.clone(), p.clone(), allow_cpu_sync=True)
    return ours, theirs, vllm_sampling.fallbacks - before


@pytest.mark.parametrize("scale", [0.5, 3.0, 8.0])  # flat (fallback) .. peaked (bounded)
@pytest.mark.parametrize("with_k", [False, True])
def test_masks_equal_vllms_sort(reference, scale, with_k):
    import torch

    gen = torch.Generator().manual_seed(int(scale * 10) + with_k)
    logits = torch.randn(8, VOCAB, generator=gen) * scale
    p = torch.tensor([0.95, 1.0, 0.5, 0.9, 1.0, 0.99, 0.3, 0.8])
    k = torch.tensor([VOCAB, 50, VOCAB, 1000, VOCAB, 5, 20_000, 3]) if with_k else None
    ours, theirs, _ = masks(reference, logits, k, p)
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    # Surviving logits keep their values.
    kept = torch.isfinite(ours)
    assert torch.equal(ours[kept], logits[kept])


def test_bounded_and_fallback_paths_are_both_taken(reference):
    import torch

    gen = torch.Generator().manual_seed(1)
    peaked = torch.randn(4, VOCAB, generator=gen) * 8.0
    flat = torch.randn(4, VOCAB, generator=gen) * 0.5
    p = torch.full((4,), 0.95)
    _, _, fell_back = masks(reference, peaked, None, p)
    assert fell_back == 0
    ours, theirs, fell_back = masks(reference, flat, None, p)
    assert fell_back == 4
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))


def test_rows_without_top_p_or_top_k_are_untouched(reference):
    import torch

    logits = torch.randn(3, VOCAB)
    p = torch.tensor([1.0, 0.9, 1.0])
    ours, theirs, _ = masks(reference, logits, None, p)
    assert torch.equal(ours[0], logits[0]) and torch.equal(ours[2], logits[2])
    assert torch.isfinite(ours[1]).sum() < VOCAB
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))


def test_registered_as_a_vllm_plugin_and_patches_the_cpu_sampler():
    found = {e.name: e.value for e in importlib.metadata.entry_points(group="vllm.general_plugins")}
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    from pipeline.engines.vllm_sampling import PLUGIN_NAME, plugins_without_cpu_top_p, register

    assert found.get(PLUGIN_NAME) == "pipeline.engines.vllm_sampling:register"
    assert PLUGIN_NAME not in plugins_without_cpu_top_p().split(",")

    register()
    register()  # vLLM may load plugins more than once in a process
    assert getattr(sampler.apply_top_k_top_p, "sparq", False)


def test_ties_at_the_threshold_keep_vllms_count_on_bf16_rows(reference):
    """bf16 logits tie often; at the top-p threshold vLLM keeps only as many tied tokens as
    its cut needs (which ones follows its unstable sort). Before: every tied token was kept
    (1-2 extra tokens in about one row in eight). Now: the same count per row, the same mask
    outside the tied tokens, the same kept probability mass."""
    import torch

    gen = torch.Generator().manual_seed(7)
    rows = 200
    logits = torch.randn(rows, VOCAB, generator=gen) * 2.0
    # Nuclei of about 7 tokens whose logits sit on a few bf16 steps, so they tie.
    steps = torch.tensor([9.0, 9.0625, 9.125, 9.1875, 8.9375, 8.875])
    for r in range(rows):
        ids = torch.randperm(VOCAB, generator=gen)[:9]
        logits[r, ids] = steps[torch.randint(len(steps), (9,), generator=gen)] + 8.0
    logits = logits.to(torch.bfloat16).to(torch.float32)
    p = torch.tensor([0.95, 0.9, 0.8, 0.7]).repeat(rows // 4)
    ours, theirs, _ = masks(reference, logits, None, p)
    kept_o, kept_t = torch.isfinite(ours), torch.isfinite(theirs)
    assert torch.equal(kept_o.sum(-1), kept_t.sum(-1))
    # Where they differ, only tokens tied at the row's threshold are exchanged.
    threshold = torch.where(kept_t, logits, torch.full_like(logits, float("inf"))).min(-1).values
    differ = kept_o != kept_t
    assert torch.equal(differ & (logits != threshold.unsqueeze(1)), torch.zeros_like(differ))
    probs = logits.softmax(-1)
    assert torch.allclose((probs * kept_o).sum(-1), (probs * kept_t).sum(-1), atol=1e-6)
    # The rows did tie at the threshold (the case this test is about).
    assert int(((logits == threshold.unsqueeze(1)).sum(-1) > 1).sum()) > 10
