"""``summary.md``: the reference and the original, the recommendations with their rationale, the front as a table,
and every figure with a sentence on what it shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from moo_compress.report.figures import FigureSpec
from moo_compress.report.methods import method_style
from moo_compress.report.rundata import RunData
from moo_compress.report.tables import format_ms, latency_titles, recommendations_by_row

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
    where = f" of the {block['split']} split" if block.get("split") not in (None, "all") else ""
    if block.get("images_per_cell"):
        return f"the first {block['images_per_cell']} images per (corruption, severity){where} in their fixed order"
    return (f"every image{where}" if block.get("n_per_class") is None
            else f"{block['n_per_class']} images per class{where}")


def _interval(row: Any, name: str, signed: bool = True) -> str:
    """``estimate [low, high]`` of a ``final/<name>`` interval column, or the point alone."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: d)
    est, low, high = get(f"final/{name}"), get(f"final/{name}_low"), get(f"final/{name}_high")
    if est is None or pd.isna(est):
        return "undefined"
    sign = "+" if signed else ""
    if low is None or pd.isna(low):
        return format(float(est), f"{sign}.1f")
    return f"{float(est):{sign}.1f} [{float(low):{sign}.1f}, {float(high):{sign}.1f}]"


def _header(run: RunData) -> list[str]:
    cfg, info = run.config, run.info
    settings = run.settings
    ev = run.evaluations
    n_failed = len(ev) - len(run.ok)
    select = info.get("selection")
    stages = (f"the screening front and the plans within its noise were measured on {_fidelity(select)} (extending "
              "the images they had), "
              "which decided the front and the recommendations" if select else
              "the front and the recommendations were decided on the screening numbers")
    report = (f"the selected plans were then measured on {_fidelity(info.get('final'))} "
              f"(clean accuracy on every image of that split)" if run.has_final else "nothing was measured on a "
              "report split (--final-images 0): the numbers below are the ones that selected the plans")
    lines = [
        f"# Compression search: {info.get('arch')} on {info.get('dataset')}",
        "",
        f"Search space `{cfg.get('space', {}).get('name')}` ({len(info.get('variables', []))} genes), "
        f"seed {info.get('seed')}, {len(ev)} distinct plans evaluated ({n_failed} failed) in "
        f"{_fmt((info.get('seconds') or 0) / 60, '.1f')} minutes ({settings.get('precision')} inference). "
        f"The test set is split (stratified, seed {settings.get('split_seed', 0)}) into a search half and a report "
        f"half. {_screening(info)} for clean accuracy and for each of "
        f"{len(info.get('corruptions', []))} corruptions x {len(info.get('severities', []))} severities; {stages}; "
        f"{report}.",
        "",
        "Objectives: clean accuracy (higher is better), robustness "
        f"(`{run.knees.get('robustness', 'mean_corruption_accuracy')}`){',' if run.latency_objective else ' and'} "
        "compression ratio = fp32 size / compressed size under the storage model (higher is better)"
        f"{_latency_objective(run)}. Deltas, mCE (100 = as robust as the "
        "reference) and constraints compare every plan with the **reference**: the uncompressed model after the "
        "same recovery as every candidate. Intervals are paired 95% intervals over the report images (candidate "
        "and reference on the same images); they cover the sampling of test images only, not the calibration "
        "images, the search seed or other data.",
        *_recovery(cfg.get("space", {}).get("recovery") or {}),
    ]
    base = run.knees.get("baseline", {})
    if settings.get("report_on_search") or base.get("report_on_search"):
        lines += ["", "> **Warning: optimistic figures.** This run reported on the search split "
                  "(`--report-on-search`), the images that selected the plans: their numbers are biased upward."]
    for note in base.get("notes") or []:
        lines += ["", f"> **Note:** {note}."]
    return lines + _promotion(base.get("promotion"))


def _delta(claim: dict[str, Any]) -> str:
    return f"{claim['estimate']:+.1f} [{claim['low']:+.1f}, {claim['high']:+.1f}]"


def _level_text(r: dict[str, Any] | None) -> str:
    """The expensive level's steps in words, in the order they run (``r``: its every field, defaults included)."""
    if not r:
        return "fine-tuning"
    loss = (f"distillation from the original (weight {r['finetune_distill']:g}, T = {r['finetune_temperature']:g})"
            + (f" plus label cross-entropy (weight {r['finetune_label_weight']:g})" if r["finetune_label_weight"]
               else "") if r["finetune_distill"] else "label cross-entropy")
    tune = (f"{r['finetune_steps']} Adam steps (rate {r['finetune_lr']:g}, batch {r['finetune_batch_size']}, from "
            f"{r['finetune_images'] or 'all the'} class-balanced training images"
            f"{', AugMix' if r['finetune_augment'] else ''}) of {loss} that keep the compression")
    if r["finetune_bn"] == "frozen":
        return f"batch-norm re-estimation on {r['bn_images']} images, then {tune}, on those batch-norm statistics"
    return tune + (f", then batch-norm re-estimation on {r['bn_images']} images" if r["bn_images"] else "")


def _promotion(promotion: dict[str, Any] | None) -> list[str]:
    """What recovery as a fidelity did: the expensive level, who got it, who reached the front, what it cost."""
    if not promotion:
        return []
    what = _level_text(promotion.get("recovery"))
    promoted = promotion.get("promoted") or []
    onto = promotion.get("onto_front") or []
    check = promotion.get("check") or {}
    verdict = ("beyond the noise: a damaged model, so no plan is compared with it" if check.get("damaged")
               else "within the noise or better")
    alone = (f" On its own, it moved the uncompressed model by {_delta(check['clean_delta'])} clean and "
             f"{_delta(check['mca_delta'])} mean-corruption-accuracy points against the original ({verdict})."
             if check.get("clean_delta") else "")
    return ["", f"**Recovery as a fidelity.** After selection, {len(promoted)} plan(s) chosen as the most likely to "
            f"extend the front were given the expensive recovery level `{promotion.get('level')}` ({what}) and "
            f"measured on the selection images: {', '.join(f'`{p}`' for p in promoted) or 'none'}; "
            f"{len(onto)} of them reached the front ({', '.join(f'`{p}`' for p in onto) or 'none'}). Their deltas are "
            f"against the same reference as every other plan.{alone} The stage took "
            f"{_fmt((promotion.get('seconds') or 0) / 60, '.1f')} minutes."]


def _latency_objective(run: RunData) -> str:
    """The fourth objective of the header's list, if the run optimised latency."""
    if not run.latency_objective:
        return ""
    return " and batch-1 latency of the deployed model (milliseconds, lower is better; see Latency below)"


def _runtime(settings: dict[str, Any]) -> str:
    """What timed the plans, e.g. ``each plan exported to ONNX as it deploys, timed in onnxruntime 1.32.0 ...``."""
    threads = settings.get("threads")
    name = settings.get("runtime_name") or (f"{settings.get('runtime', 'an unrecorded runtime')}"
                                            + (f", {threads} thread(s)" if threads else ""))
    if settings.get("runtime") == "onnxruntime":
        return f"each plan was exported to ONNX as it deploys and timed in {name}"
    if settings.get("runtime") == "pytorch":
        return f"each compressed model was timed in PyTorch eager mode ({name})"
    return f"each plan was timed in {name}"


def _latency(run: RunData) -> list[str]:
    """How latency was measured, what the reference took, and how far the numbers carry."""
    if not run.measures_latency:
        return []
    settings = run.latency_settings
    limit = settings.get("max_latency_ms")
    if run.latency_objective:
        role = "Batch-1 latency was the fourth objective (minimised)"
        role += f", with a constraint of at most {_fmt(limit, 'g')} ms" if limit is not None else ""
    else:
        role = ("Latency was measured for the constraint of at most " f"{_fmt(limit, 'g')} ms at batch 1, not "
                "optimised" if limit is not None else "Latency was measured and reported, not optimised")
    rounds = settings.get("rounds")
    measured = settings.get("measured") or (
        f"batch 1: median of {rounds if rounds else 'the'} timed runs after warm-up, alternating with the reference; "
        "spread = interquartile range")
    hardware = settings.get("hardware") or "hardware not recorded"
    batch = settings.get("batch_size")
    ref = run.reference_latency
    reference = (f"The reference took {format_ms(ref.get('latency_ms'))} ms at batch 1 (interquartile range "
                 f"{format_ms(ref.get('latency_low_ms'))}-{format_ms(ref.get('latency_high_ms'))} ms)"
                 if "latency_ms" in ref else "The reference's latency was not recorded")
    if batch and batch > 1 and ref.get("latency_batch_ms") is not None:
        reference += f" and {format_ms(ref['latency_batch_ms'])} ms at batch {batch}"
    larger = (f" The median time of a batch of {batch} images (one run per round) is reported beside it." if batch
              and batch > 1 else "")
    return ["", "## Latency", "",
            f"{role}. Plans were timed on this machine ({hardware}): {_runtime(settings)}, plans that deploy to the "
            f"same graph structure sharing one measurement; {measured}. Times are wall-clock milliseconds per "
            "batch; speed-up = the median over rounds of the reference's time divided by the plan's in the same "
            f"round (above 1: faster than the reference){_speedup_spread(run)}.{larger} {reference}.",
            "",
            "Latency is a measurement on this machine, not a property of the plan alone: unlike the accuracies, it "
            "is not part of the evaluation cache's invariance across execution modes, and another machine, thread "
            "count or background load gives other times. The spread shown is the interquartile range of the timed "
            "runs, not a confidence interval: two plans whose latencies differ by less than the spread of repeated "
            "runs are tied."]


def _larger_batch(run: RunData) -> str:
    batch = run.latency_settings.get("batch_size")
    return f"batch of {batch}" if batch else "larger batch"


def _speedup_spread(run: RunData) -> str:
    """How to read the interquartile range of the speed-ups, where the run recorded one."""
    if "latency_speedup_low" not in latency_titles(run):
        return ""
    return ("; its spread is the interquartile range of those per-round ratios: a range wholly above 1 is faster "
            "than the reference beyond the spread of repeated runs, wholly below 1 slower, one that holds 1 a tie")


def _latency_cells(r: Any, titles: dict[str, str]) -> list[str]:
    """The Pareto table's latency cells of one plan: batch 1 with its interquartile range, speed-up, larger batch."""
    if not titles:
        return []
    ms, low, high = (r.get(f"final/latency_{k}", r.get(f"latency_{k}")) for k in ("ms", "low_ms", "high_ms"))
    batch1 = format_ms(ms) if low is None or pd.isna(low) else f"{format_ms(ms)} [{format_ms(low)}, {format_ms(high)}]"
    speedup, low, high = (
        r.get(f"final/latency_speedup{k}", r.get(f"latency_speedup{k}")) for k in ("", "_low", "_high")
    )
    cells = [batch1, _fmt(speedup) if low is None or pd.isna(low) else f"{_fmt(speedup)} [{_fmt(low)}, {_fmt(high)}]"]
    if "latency_batch_ms" in titles:
        speedup = r.get("final/latency_batch_speedup", r.get("latency_batch_speedup"))
        batch = format_ms(r.get("final/latency_batch_ms", r.get("latency_batch_ms")))
        cells.append(batch if speedup is None or pd.isna(speedup) else f"{batch} ({_fmt(speedup)}x)")
    return cells


def _screening(info: dict[str, Any]) -> str:
    """How the candidates were screened: racing over rungs, or one fixed fidelity."""
    fid = info.get("fidelity") or {}
    if fid.get("mode") == "racing":
        ladder = "/".join(str(r) for r in fid.get("ladder", []))
        return (f"Screening raced the candidates over nested rungs of {ladder} search-split images per (corruption, "
                f"severity) in one fixed order: a plan climbed to the next rung, evaluating only the images it adds, "
                f"until a front plan confidently dominated it ({fid.get('stopped', 0)} plan(s) stopped early; "
                f"confidence {fid.get('confidence')}, one-sided tests at {_fmt(fid.get('alpha_per_look'), '.3f')} "
                f"per look; {int(fid.get('images_spent') or 0):,} images spent by screening and selection), with "
                f"{fid.get('clean_multiple', 1)} clean image(s) per corrupted image")
    return f"Screening used {_fidelity(info.get('screening'))}"


def _recovery(recovery: dict[str, Any]) -> list[str]:
    """A sentence on the recovery every candidate (and the reference) received."""
    steps = []
    if recovery.get("bn_images"):
        steps.append(f"batch-norm statistics re-estimated on {recovery['bn_images']} training images")
    if recovery.get("finetune_steps"):
        steps.append(f"{recovery['finetune_steps']} steps of fine-tuning that keep the compression")
    if not steps:
        return ["", "The space applies no recovery, so the reference is the original model."]
    return ["", f"Every plan, and the reference, was followed by recovery ({'; '.join(steps)})."]


def _baseline(run: RunData) -> list[str]:
    base = run.knees.get("baseline", {})
    screen = run.screening_baseline
    lines = ["", "## Reference and original", "",
             "| model | images | clean accuracy | mean corruption accuracy | mCE vs. reference |",
             "|---|---|---|---|---|",
             f"| reference, screening | {_fidelity(run.info.get('screening'))} "
             f"| {_fmt(screen.get('clean_accuracy'))}% | "
             f"{_fmt(screen.get('mean_corruption_accuracy'))}% | 100.0 |"]
    if base.get("selection"):
        sel = base["selection"]
        lines.append(f"| reference, selection | {_fidelity(run.info.get('selection'))} | "
                     f"{_fmt(sel.get('clean_accuracy'))}% | {_fmt(sel.get('mean_corruption_accuracy'))}% | 100.0 |")
    if run.has_final and base.get("final"):
        ref, orig = base["final"], base.get("original") or {}
        rep = base.get("report") or {}
        images = f"{rep.get('n_clean')} clean, {rep.get('n_corrupted')} per cell ({rep.get('split')} split)"
        lines.append(f"| **reference**, report | {images} | {_fmt(ref.get('clean_accuracy'))}% | "
                     f"{_fmt(ref.get('mean_corruption_accuracy'))}% | 100.0 |")
        lines.append(f"| original (no recovery), report | {images} | {_fmt(orig.get('clean_accuracy'))}% | "
                     f"{_fmt(orig.get('mean_corruption_accuracy'))}% | {_fmt(orig.get('mce'), '.1f')} |")
        rec = base.get("recovery") or {}
        if rec.get("clean_delta"):
            c, m = rec["clean_delta"], rec["mca_delta"]
            lines += ["", f"What the recovery alone does (reference minus original, report split): clean "
                      f"{c['estimate']:+.2f} points [{c['low']:+.2f}, {c['high']:+.2f}], mean corruption accuracy "
                      f"{m['estimate']:+.2f} points [{m['low']:+.2f}, {m['high']:+.2f}]; {rec.get('changed')} of "
                      f"{rec.get('n_clean')} clean predictions changed. Deltas of the plans below are against the "
                      "reference, so they show what the compression does, not the recovery."]
        if rec.get("warning"):
            lines += ["", f"**Warning:** {rec['warning']}."]
    return lines


def _recommendations(run: RunData) -> list[str]:
    lines = ["", "## Recommendations", "",
             "Decided on the search split; measured on the report split."]
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
    front = run.pareto
    titles = latency_titles(run)
    every = "all four objectives (latency included)" if run.latency_objective else "all three objectives"
    intro = ("The front decided on the search split, measured on the report split: deltas against the reference "
             "with paired 95% intervals. **Flags**: `dominated` = another reported plan is at least as good in "
             f"{every} on the report split; `tied` = the paired intervals of the differences to that "
             "ratio-order neighbour (clean and mean corruption accuracy) contain zero, so noise alone may order "
             "them. Worst class / corruption: the largest drop of one class's clean accuracy and of one "
             "corruption's accuracy (mean over severities).")
    if titles:
        intro += (" Latency (see Latency above): median milliseconds at batch 1 [interquartile range of the timed "
                  "runs], the speed-up against the reference in the same runs (x, above 1 = faster)"
                  + (" [interquartile range of the per-round ratios]" if "latency_speedup_low" in titles else "")
                  + (f" and the median time of a {_larger_batch(run)} (ms, with its speed-up)"
                     if "latency_batch_ms" in titles else "") + ".")
    latency_head = (["latency, batch 1 (ms) [IQR]",
                     "speed-up vs. reference (x)" + (" [IQR]" if "latency_speedup_low" in titles else "")]
                    + ([titles["latency_batch_ms"].replace("(ms)", "(ms, speed-up)")] if "latency_batch_ms" in titles
                       else [])) if titles else []
    names = ["#", "plan", "picked as", "ratio (x)", "clean (%)", "clean Δ (points)", "mean corr. acc. (%)",
             "mCA Δ (points)", "mCE", "worst class Δ", "worst corruption Δ", *latency_head, "flags"]
    head = ("| " + " | ".join(names) + " |", "|" + "---|" * len(names))
    lines = ["", "## Pareto set", "", intro, "", *head]
    for i, r in front.iterrows():
        tags = ", ".join(method_style(p["method"]).short for p in picks.get(int(i), []))
        flags = []
        if isinstance(r.get("dominated_on_report_by"), str):
            flags.append(f"dominated by `{r['dominated_on_report_by']}`")
        if isinstance(r.get("tied_with"), str):
            flags.append(f"tied with `{r['tied_with']}`")
        worst_class = (f"{r.get('final/worst_class')}: {_interval(r, 'worst_class_delta')}"
                       if "final/worst_class" in r else "n/a")
        worst_corr = (f"{r.get('final/worst_corruption')}: {_interval(r, 'worst_corruption_delta')}"
                      if "final/worst_corruption" in r else "n/a")
        cells = [str(i), f"`{r['label']}`", tags, _fmt(r.get("final/compression_ratio")),
                 _fmt(r.get("final/clean_accuracy")), _interval(r, "clean_delta"),
                 _fmt(r.get("final/mean_corruption_accuracy")), _interval(r, "mca_delta"),
                 _interval(r, "mce", signed=False), worst_class, worst_corr, *_latency_cells(r, titles),
                 "; ".join(flags)]
        lines.append("| " + " | ".join(cells) + " |")
    if front.empty:
        lines.append("| | (empty: no feasible plan) |" + " |" * (len(names) - 2))
    return lines


def _held_out(run: RunData) -> list[str]:
    """Searched and held-out robustness side by side, for the plans measured on both."""
    info = run.knees.get("baseline", {}).get("heldout")
    if not info:
        return []
    suites = info.get("suites") or {}
    lines = ["", "## Held-out robustness", ""]
    if not suites:
        return lines + ["Nothing is held out: the search space optimises every corruption of the reference recipe, "
                        "and no other suite exists for this input size."]
    named = "; ".join(f"{name} ({len(members)}: {', '.join(members)})" for name, members in suites.items())
    lines += [f"Corruptions the search never saw — {named} — measured on {info.get('n_corrupted')} "
              f"{info.get('split')}-split images per (corruption, severity), the same images as the report, "
              f"against the same reference ({_fmt(info.get('reference_mca'))}% there). A plan is flagged when "
              "another measured plan it is confidently more robust than on the searched corruptions (paired 95% "
              "interval of the difference above zero) is confidently more robust than it on the held-out ones "
              "(interval below zero): its ranking does not carry over.", "",
              "| # | plan | searched mCA (%) | mCA Δ searched (points) | held-out mCA (%) | mCA Δ held out (points) "
              "| reversed against |", "|---|---|---|---|---|---|---|"]
    front = run.pareto
    if "heldout/mca_delta" not in front:
        return lines
    for i, r in front[front["heldout/mca_delta"].notna()].iterrows():
        held = (f"{r['heldout/mca_delta']:+.2f} [{r['heldout/mca_delta_low']:+.2f}, "
                f"{r['heldout/mca_delta_high']:+.2f}]")
        reversal = r.get("heldout/rank_reversal")
        lines.append(f"| {i} | `{r['label']}` | {_fmt(r.get('final/mean_corruption_accuracy'))} | "
                     f"{_interval(r, 'mca_delta')} | {_fmt(r.get('heldout/mean_corruption_accuracy'))} | {held} | "
                     f"{reversal if isinstance(reversal, str) else ''} |")
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
    lines = (_header(run) + _baseline(run) + _latency(run) + _recommendations(run) + _pareto(run) + _held_out(run)
             + _failures(run))
    if figures:
        lines += ["", "## Figures", ""]
        for spec in figures:
            lines += [f"### {spec.caption}", "", spec.describe(run), "", f"![{spec.caption}]({spec.file})", ""]
    run_dir = run.path
    lines += [
        "## Next steps",
        "",
        "Plan labels read `P<sparsity %>-C<clusters>-Q<weight bits>` (`G(group:...)` for per-group plans); `#` is "
        "the row of `pareto.csv`.",
        "",
        "```bash",
        f"python -m moo_compress.evaluate --run {run_dir} --select knee            # more report-split images",
        f"python -m moo_compress.evaluate --run {run_dir} --select 3 --export exported/   # row 3, packed model file",
        f"python -m moo_compress.report {run_dir}                                   # regenerate this summary",
        f"MOO_COMPRESS_RUN={run_dir} jupyter lab notebooks/explore_fronts.ipynb     # explore interactively",
        "```",
        "",
    ]
    return "\n".join(lines)
