"""``summary.md``: the baseline, the recommendations with their rationale, and the front as a table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from moo_compress.report.rundata import RunData

__all__ = ["summary_markdown"]


def _fmt(value: Any, spec: str = ".2f") -> str:
    try:
        return "n/a" if value is None or pd.isna(value) else format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def summary_markdown(run: RunData, figures: dict[str, str]) -> str:
    """The Markdown summary of a run; ``figures`` maps captions to image file names in the run folder."""
    cfg = run.config
    settings, info = cfg.get("settings", {}), cfg.get("run", {})
    base = run.baseline
    screen = run.screening_baseline
    ev = run.evaluations
    n_ok = int((ev["status"] == "ok").sum()) if len(ev) else 0
    n_failed = len(ev) - n_ok
    final = info.get("final") or {}
    final_n = "the whole test set" if final and final.get("n_per_class") is None else (
        f"{final.get('n_per_class')} images per class" if final else "n/a (not re-evaluated)")
    lines = [
        f"# Compression search: {info.get('arch')} on {info.get('dataset')}",
        "",
        f"Search space `{cfg.get('space', {}).get('name')}` ({len(info.get('variables', []))} genes), "
        f"seed {info.get('seed')}, {len(ev)} distinct plans evaluated ({n_failed} failed) in "
        f"{_fmt(info.get('seconds', 0) / 60, '.1f')} minutes. Screening used "
        f"{info.get('screening', {}).get('n_per_class')} images per class for clean accuracy and for each of "
        f"{len(info.get('corruptions', []))} corruptions x {len(info.get('severities', []))} severities; the Pareto "
        f"set was re-evaluated on {final_n} ({settings.get('precision')} inference).",
        "",
        "Objectives: clean accuracy (higher is better), robustness = mean accuracy over the corrupted test "
        "images (higher is better; mCE is reported against the uncompressed baseline, 100 = as robust as it), "
        "and compression ratio = fp32 size / compressed size under the storage model (higher is better).",
        "",
        "## Baseline (uncompressed)",
        "",
        "| fidelity | clean accuracy | mean corruption accuracy | compression |",
        "|---|---|---|---|",
        f"| screening | {_fmt(screen.get('clean_accuracy'))}% | {_fmt(screen.get('mean_corruption_accuracy'))}% | 1.00x |",
    ]
    if run.knees.get("baseline", {}).get("final"):
        lines.append(f"| final | {_fmt(base.get('clean_accuracy'))}% | {_fmt(base.get('mean_corruption_accuracy'))}% "
                     "| 1.00x |")
    lines += ["", "## Recommendations", ""]
    recs = run.recommendations
    if not recs:
        lines.append("No feasible plan was found: loosen the constraints of the search space or widen its genes.")
    for rec in recs:
        if rec.get("row") is None:
            lines.append(f"- **{rec['title']}**: {rec['rationale']}.")
            continue
        lines.append(f"- **{rec['title']}** — `{rec['label']}`: {rec['rationale']}")
    lines += ["", "## Pareto set", "",
              "Screening values, then final-fidelity values (`final`). mCE: 100 = as robust as the baseline.", "",
              "| # | plan | clean acc. (%) | final | mean corr. acc. (%) | final | mCE | final | ratio (x) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for i, r in run.pareto.iterrows():
        lines.append(
            f"| {i} | `{r['label']}` | {_fmt(r.get('clean_accuracy'))} | {_fmt(r.get('final/clean_accuracy'))} | "
            f"{_fmt(r.get('mean_corruption_accuracy'))} | {_fmt(r.get('final/mean_corruption_accuracy'))} | "
            f"{_fmt(r.get('mce'), '.1f')} | {_fmt(r.get('final/mce'), '.1f')} | {_fmt(r.get('compression_ratio'))} |")
    if figures:
        lines += ["", "## Figures", ""]
        for caption, file in figures.items():
            lines += [f"**{caption}**", "", f"![{caption}]({file})", ""]
    run_dir = run.path
    lines += [
        "## Next steps",
        "",
        "Plan labels read `P<sparsity %>-C<clusters>-Q<weight bits>` (`G(group:...)` for per-group plans).",
        "",
        "```bash",
        f"python -m moo_compress.evaluate --run {run_dir} --select knee            # full-fidelity re-evaluation",
        f"python -m moo_compress.evaluate --run {run_dir} --select knee --export exported/   # packed model files",
        f"python -m moo_compress.report {run_dir}                                   # regenerate this summary",
        "```",
        "",
    ]
    return "\n".join(lines)
