"""``summary.md``: the baseline, the recommendations with their rationale, the front as a table,
and every figure with a sentence on what it shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from moo_compress.report.figures import FigureSpec
from moo_compress.report.methods import method_style
from moo_compress.report.rundata import RunData
from moo_compress.report.tables import recommendations_by_row

__all__ = ["summary_markdown"]

_MAX_ERRORS = 5


def _fmt(value: Any, spec: str = ".2f") -> str:
    try:
        return "n/a" if value is None or pd.isna(value) else format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def _fidelity(block: dict[str, Any] | None) -> str:
    if not block:
        return "n/a (not re-evaluated)"
    return "the whole test set" if block.get("n_per_class") is None else f"{block['n_per_class']} images per class"


def _header(run: RunData) -> list[str]:
    cfg, info = run.config, run.info
    settings = cfg.get("settings", {})
    ev = run.evaluations
    n_failed = len(ev) - len(run.ok)
    final = (f"the Pareto set was re-evaluated on {_fidelity(info.get('final'))}" if run.has_final
             else "the Pareto set was not re-evaluated (final fidelity = screening)")
    return [
        f"# Compression search: {info.get('arch')} on {info.get('dataset')}",
        "",
        f"Search space `{cfg.get('space', {}).get('name')}` ({len(info.get('variables', []))} genes), "
        f"seed {info.get('seed')}, {len(ev)} distinct plans evaluated ({n_failed} failed) in "
        f"{_fmt((info.get('seconds') or 0) / 60, '.1f')} minutes. Screening used "
        f"{_fidelity(info.get('screening'))} for clean accuracy and for each of {len(info.get('corruptions', []))} "
        f"corruptions x {len(info.get('severities', []))} severities; {final} "
        f"({settings.get('precision')} inference).",
        "",
        "Objectives: clean accuracy (higher is better), robustness = mean accuracy over the corrupted test "
        "images (higher is better; mCE is reported against the uncompressed baseline, 100 = as robust as it), "
        "and compression ratio = fp32 size / compressed size under the storage model (higher is better).",
        *_recovery(cfg.get("space", {}).get("recovery") or {}),
    ]


def _recovery(recovery: dict[str, Any]) -> list[str]:
    """A sentence on the recovery every candidate received (the baseline row is the untouched model)."""
    steps = []
    if recovery.get("bn_images"):
        steps.append(f"batch-norm statistics re-estimated on {recovery['bn_images']} training images")
    if recovery.get("finetune_steps"):
        steps.append(f"{recovery['finetune_steps']} steps of fine-tuning that keep the compression")
    if not steps:
        return []
    return ["", f"Every plan was followed by recovery ({'; '.join(steps)}); the baseline is the untouched model, "
                "and the plan `recovery only` is the uncompressed model with that recovery alone."]


def _baseline(run: RunData) -> list[str]:
    screen = run.screening_baseline
    lines = ["", "## Baseline (uncompressed)", "",
             "| fidelity | clean accuracy | mean corruption accuracy | compression |", "|---|---|---|---|",
             f"| screening | {_fmt(screen.get('clean_accuracy'))}% | {_fmt(screen.get('mean_corruption_accuracy'))}% "
             "| 1.00x |"]
    if run.has_final:
        base = run.baseline
        lines.append(f"| final | {_fmt(base.get('clean_accuracy'))}% | {_fmt(base.get('mean_corruption_accuracy'))}% "
                     "| 1.00x |")
    return lines


def _recommendations(run: RunData) -> list[str]:
    lines = ["", "## Recommendations", ""]
    recs = run.recommendations
    if not recs:
        lines.append("No feasible plan was found: loosen the constraints of the search space or widen its genes.")
    for rec in recs:
        if rec.get("row") is None:
            lines.append(f"- **{rec['title']}**: {rec['rationale']}.")
        else:
            lines.append(f"- **{rec['title']}** — row {rec['row']}, `{rec['label']}`: {rec['rationale']}")
    return lines


def _pareto(run: RunData) -> list[str]:
    picks = recommendations_by_row(run)
    final = run.has_final
    if final:
        intro = "Screening values, then final-fidelity values (`final`). mCE: 100 = as robust as the baseline."
        head = ("| # | plan | picked as | clean acc. (%) | final | mean corr. acc. (%) | final | mCE | final "
                "| ratio (x) |", "|---|---|---|---|---|---|---|---|---|---|")
    else:
        intro = "Screening values (the front was not re-evaluated). mCE: 100 = as robust as the baseline."
        head = ("| # | plan | picked as | clean acc. (%) | mean corr. acc. (%) | mCE | ratio (x) |",
                "|---|---|---|---|---|---|---|")
    lines = ["", "## Pareto set", "", intro, "", *head]
    for i, r in run.pareto.iterrows():
        tags = ", ".join(method_style(p["method"]).short for p in picks.get(int(i), []))
        cells = [str(i), f"`{r['label']}`", tags, _fmt(r.get("clean_accuracy"))]
        if final:
            cells += [_fmt(r.get("final/clean_accuracy")), _fmt(r.get("mean_corruption_accuracy")),
                      _fmt(r.get("final/mean_corruption_accuracy")), _fmt(r.get("mce"), ".1f"),
                      _fmt(r.get("final/mce"), ".1f"), _fmt(r.get("final/compression_ratio"))]
        else:
            cells += [_fmt(r.get("mean_corruption_accuracy")), _fmt(r.get("mce"), ".1f"),
                      _fmt(r.get("compression_ratio"))]
        lines.append("| " + " | ".join(cells) + " |")
    if run.pareto.empty:
        lines.append("| | (empty: no feasible plan) | | | | | |")
    return lines


def _failures(run: RunData) -> list[str]:
    ev = run.evaluations
    if "status" not in ev:
        return []
    failed = ev[ev["status"] != "ok"]
    if failed.empty:
        return []
    lines = ["", "## Failed candidates", "",
             f"{len(failed)} plan(s) failed; they are kept in `evaluations.csv` (`status`, `error`) and left out of "
             "the figures. Distinct errors:", ""]
    for error, group in list(failed.groupby(failed["error"].fillna("(no message)"), sort=False))[:_MAX_ERRORS]:
        lines.append(f"- `{str(error).splitlines()[0][:200]}` ({len(group)} plan(s), e.g. `{group['label'].iloc[0]}`)")
    return lines


def summary_markdown(run: RunData, figures: Sequence[FigureSpec] = ()) -> str:
    """The Markdown summary of a run; ``figures`` are embedded from the run folder by file name."""
    lines = _header(run) + _baseline(run) + _recommendations(run) + _pareto(run) + _failures(run)
    if figures:
        lines += ["", "## Figures", ""]
        for spec in figures:
            lines += [f"### {spec.caption}", "", spec.description, "", f"![{spec.caption}]({spec.file})", ""]
    run_dir = run.path
    lines += [
        "## Next steps",
        "",
        "Plan labels read `P<sparsity %>-C<clusters>-Q<weight bits>` (`G(group:...)` for per-group plans); `#` is "
        "the row of `pareto.csv`.",
        "",
        "```bash",
        f"python -m moo_compress.evaluate --run {run_dir} --select knee            # full-fidelity re-evaluation",
        f"python -m moo_compress.evaluate --run {run_dir} --select 3 --export exported/   # row 3, packed model file",
        f"python -m moo_compress.report {run_dir}                                   # regenerate this summary",
        f"MOO_COMPRESS_RUN={run_dir} jupyter lab notebooks/explore_fronts.ipynb     # explore interactively",
        "```",
        "",
    ]
    return "\n".join(lines)
