"""Base vs fine-tuned comparison: rows for a table artifact, markdown, and a bar plot with the 95% intervals.

Pure functions (no Prefect), so the flow's artifact content is testable on its own.
"""

from __future__ import annotations

import io
from typing import Any

from finetune.evaluate import format_table


def comparison_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per labelled evaluation result ({"base": ..., "finetuned": ...})."""
    rows = []
    for label, r in results.items():
        k = r["k"]
        rows.append({"model": label, "path": r["model"], "prompt": r["prompt"], "problems": r["problems"], "n": r["n"],
                     "pass@1": round(r["pass@1"]["estimate"], 4), "pass@1 CI": _ci(r["pass@1"]), "k": k,
                     "pass@k": round(r[f"pass@{k}"]["estimate"], 4), "pass@k CI": _ci(r[f"pass@{k}"])})
    return rows


def _ci(est: dict[str, float]) -> str:
    return f"[{est['ci_lo']:.3f}, {est['ci_hi']:.3f}]"


def per_problem_pass1(result: dict[str, Any]) -> list[float]:
    """c / n of each problem of an `evaluate` result, in its problem order."""
    return [p["correct"] / result["n"] for p in result["per_problem"]]


def paired_vs_base(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """pass@1 of every model minus the base's, paired over the same problems (finetune.metrics).

    Empty without a "base" result or without per-problem scores (older JSON)."""
    from finetune.metrics import paired_difference

    base = results.get("base")
    if base is None or "per_problem" not in base:
        return {}
    out = {}
    for label, r in results.items():
        if label == "base" or "per_problem" not in r:
            continue
        if [p["index"] for p in r["per_problem"]] != [p["index"] for p in base["per_problem"]]:
            continue  # not the same problems: no pairing
        d = paired_difference(per_problem_pass1(r), per_problem_pass1(base))
        out[f"{label} - base"] = d.as_dict()
    return out


def comparison_markdown(results: dict[str, dict[str, Any]], png_uri: str | None = None) -> str:
    first = next(iter(results.values()))
    lines = ["# Fine-tuning comparison", "",
             f"{first['problems']} problems of `{first['source']}`, n = {first['n']} samples each; "
             f"intervals: {first['ci_method']}.", "", "```",
             format_table([{**r, "model": label} for label, r in results.items()]), "```"]
    for name, d in paired_vs_base(results).items():
        verdict = "significant" if d["significant_at_0.05"] else "not significant"
        lines += ["", f"pass@1 {name}: {d['difference']:+.3f} [{d['ci_lo']:+.3f}, {d['ci_hi']:+.3f}], paired over the "
                      f"same {d['problems']} problems; sign-flip p = {d['p_value']:.3f} ({verdict} at 0.05)."]
    if png_uri:
        lines += ["", f"![pass@1 and pass@k with 95% intervals]({png_uri})"]
    return "\n".join(lines) + "\n"


def comparison_plot(results: dict[str, dict[str, Any]]) -> bytes:
    """PNG bytes: pass@1 and pass@k per model, error bars = the 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    width = 0.38
    for j, metric in enumerate(("pass@1", "pass@k")):
        est, lo, hi = [], [], []
        for label in labels:
            r = results[label]
            e = r["pass@1"] if metric == "pass@1" else r[f"pass@{r['k']}"]
            est.append(e["estimate"])
            lo.append(e["estimate"] - e["ci_lo"])
            hi.append(e["ci_hi"] - e["estimate"])
        xs = [i + (j - 0.5) * width for i in range(len(labels))]
        name = metric if metric == "pass@1" else f"pass@{results[labels[0]]['k']}"
        ax.bar(xs, est, width, yerr=[lo, hi], capsize=4, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (95% CI)")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_comparison(results: dict[str, dict[str, Any]], out_dir: str) -> dict[str, str]:
    """OUT/comparison.json (the full results), comparison.png and comparison.md; returns the paths."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = comparison_plot(results)
    paths = {"json": out / "comparison.json", "png": out / "comparison.png", "md": out / "comparison.md"}
    paths["json"].write_text(json.dumps({**results, "paired": paired_vs_base(results)}, indent=2), encoding="utf-8")
    paths["png"].write_bytes(png)
    # The markdown file references the PNG beside it; the Prefect artifact inlines it (data URI).
    paths["md"].write_text(comparison_markdown(results, "comparison.png"), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
