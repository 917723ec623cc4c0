"""Plain-text rendering of `pipeline.read.inspection` summaries for the terminal (`sparq inspect`)."""

from __future__ import annotations

import textwrap
from typing import Any

BAR_WIDTH = 40
PROBLEM_CHARS = 70


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _bar(count: int, most: int) -> str:
    # ASCII, so the output survives any terminal and log file.
    if most <= 0 or count <= 0:
        return ""
    return "#" * max(1, round(BAR_WIDTH * count / most))


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def occupancy(s: dict[str, Any]) -> str:
    # Some archive kinds grow their niches as they go: no fixed cell count to divide by.
    return f"{s['elites']} of {s['cells']} cells occupied" if s["cells"] else f"{s['elites']} niches occupied"


def format_histogram(hist: dict[str, list]) -> list[str]:
    edges, counts = hist["edges"], hist["counts"]
    most = max(counts, default=0)
    lines = []
    for i, count in enumerate(counts):
        closing = "]" if i == len(counts) - 1 else ")"
        label = f"[{edges[i]:.1f}, {edges[i + 1]:.1f}{closing}"
        lines.append(f"  {label:<11} {count:>5}  {_bar(count, most)}")
    return lines


def format_summary(s: dict[str, Any]) -> str:
    status = ", ".join(f"{k} {v}" for k, v in s["status"].items())
    band = s["quality_band"]
    lines = [
        f"run {s['run_dir']} (id {s['run_id']}): {s['steps']} committed step(s)",
        f"candidates  {s['candidates']} generated ({status}) + {s['seeds']} seeds",
        f"accepted    {s['accepted']} generated candidates archived (new cell or improved elite)",
        f"archive     {occupancy(s)} (coverage {s['coverage']:.3f}, {s['archive_kind']}): "
        f"{s['generated_elites']} generated, {s['seed_elites']} seeds",
        f"QD score    {s['qd_score']:.3f} (sum of elite qualities; seeds count 0)",
    ]
    v = s["validity"]
    if v["checked"]:
        why = ", ".join(f"{k} {n}" for k, n in v["reasons"].items())
        repaired = f", {v['repaired']} of them repaired" if v.get("repaired") else ""
        lines.append(f"validity    {v['checked']} checked: {v['valid']} valid{repaired} "
                     f"(share {v['valid_share']:.3f}), "
                     f"{v['invalid']} invalid" + (f" (first failed check: {why})" if why else ""))
        lines.append("            valid share per step: " + ", ".join(
            f"{p['step']}: {p['valid_share']:.2f}" for p in v["per_step"]))
        lines.append(f"            generated elites: {s['valid_elites']} valid, {s['invalid_elites']} invalid")
    else:
        lines.append("validity    not checked (a run older than the validity checks)")
    if s["elites_source"] != "snapshot":
        lines.append(f"elites      {s['elites_source']}")
    if band:
        lines.append(f"band        quality > 0 iff solve rate in [{band[0]}, {band[1]}]")
    n_rates = sum(s["solve_rate_histogram"]["counts"])
    lines += ["", f"solve rate of ok candidates (n={n_rates})"]
    lines += format_histogram(s["solve_rate_histogram"])
    lines += ["", f"top {len(s['top_elites'])} generated elites"]
    if s["top_elites"]:
        lines.append(f"  {'id':<16}  {'quality':>7}  {'solve':>5}  {'cell':>5}  {'step':>4}  {'depth':>5}  problem")
        for e in s["top_elites"]:
            lines.append(f"  {e['id']:<16}  {e['quality']:>7.3f}  {_fmt(e['solve_rate'], 2):>5}  {e['cell']:>5}  "
                         f"{e['step']:>4}  {e['depth']:>5}  {_one_line(e['problem'], PROBLEM_CHARS)}")
    else:
        lines.append("  (none yet: no generated candidate has quality > 0)")
    lines += ["", "lineage depth of elites (0 = seed)"]
    most = max((d["count"] for d in s["elite_depth"]), default=0)
    lines += [f"  depth {d['depth']:>3}  {d['count']:>5}  {_bar(d['count'], most)}" for d in s["elite_depth"]]
    lines += ["", "operator yield (archived per generated candidate)"]
    if not s["operators"]:
        lines.append("  (no generated candidates yet)")
    for o in s["operators"]:
        lines.append(f"  {o['operator']:<16} {o['archived']:>5} / {o['candidates']:<5} = {o['yield']:.3f}   "
                     f"(ok {o['ok']}, invalid {o['invalid']}, unparseable {o['unparseable']}, "
                     f"duplicate {o['duplicate']}, failed {o['failed']})")
    return "\n".join(lines)


def format_lineage(chain: list[dict[str, Any]]) -> str:
    head = chain[0]
    where = (f"the elite of cell {head['cell']}" if head["elite_now"]
             else "not an elite now (beaten, ineligible or not archived)")
    lines = [f"candidate {head['id']}: {where}",
             f"lineage: {len(chain)} problem(s), newest first, back to seed {chain[-1]['id']}", ""]
    for node in chain:
        scored = (f"solve rate {_fmt(node['solve_rate'], 2)} ({node['k']} attempts), quality {node['quality']:.3f}"
                  if node["status"] != "seed" else "seed (not scored)")
        lines.append(f"[depth {node['depth']}] {node['id']}  step {node['step']}  operator {node['operator']}  "
                     f"status {node['status']}  cell {node['cell']}  {scored}")
        body = textwrap.fill(" ".join((node["problem"] or "(no problem text)").split()), width=96,
                             initial_indent="    ", subsequent_indent="    ")
        lines.append(body)
        if node.get("second_parent_id"):
            lines.append(f"    second parent: {node['second_parent_id']} (inspect it with --elite)")
        if node["answer"] is not None:
            lines.append(f"    answer: {node['answer']}")
        if node.get("valid") is not None:
            why = "valid" if node["valid"] else f"INVALID: {node['validity_reason']}"
            lines.append(f"    validity: {why}")
        lines.append("")
    return "\n".join(lines).rstrip()
