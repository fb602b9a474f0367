"""Racing against fixed-fidelity screening at equal cost. Writes the ``fidelity`` section of RESULTS.md.

On ResNet-20 (the ``fidelity`` space: an 80-plan grid, 5 corruptions at severity 3, batch-norm
re-estimation on 512 training images):

1. **Truth** (computed once, cached, reused by every replay): per-image outcomes of every plan and of
   the reference on the first ``--truth-images`` images per cell of the search split's fixed order,
   and on as many report-split images (clean accuracy on the whole report split).
2. **Replays.** For each seed, NSGA-II (population 8, until the image budget is spent) runs with the
   search's own :class:`~moo_compress.search.racing.Racer`, whose windows are served from the
   search-split truth (the seed also permutes the truth images, so every seed sees other images),
   once with fixed screening on ``--fixed-images`` per cell and once per racing ladder, at the same
   image budget (about a third of the grid at the fixed fidelity). The front is then selected as the
   search does: the front and the plans within its noise brought to ``--select-images``.
3. **Scores** with the *true report-split* values of the returned plans: hypervolume as a fraction of
   the true front's (objectives normalised by the true front's range, reference point 1.1), precision
   and recall of the returned front against the true front; means, spread (standard deviation) and wins
   over seeds.

Usage:
    python benchmarks/bench_fidelity.py            # truth about 10 minutes on 2 CPU cores (then cached)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

from moo_compress.compress import CompressionPlan  # noqa: E402
from moo_compress.data import load_dataset  # noqa: E402
from moo_compress.evaluation.stats import pack_bits  # noqa: E402
from moo_compress.models import model_defaults  # noqa: E402
from moo_compress.search import ExecutionSettings, SearchSettings, TargetSettings  # noqa: E402
from moo_compress.search.algorithms import create_algorithm  # noqa: E402
from moo_compress.search.candidate import split_order, split_pool  # noqa: E402
from moo_compress.search.evaluation_record import EvaluationRecord, record_outcomes  # noqa: E402
from moo_compress.search.evaluations import EvaluationLog, evaluation_frame  # noqa: E402
from moo_compress.search.executors import ExecutorConfig, close_executors, default_workers  # noqa: E402
from moo_compress.search.final import contenders, pareto_mask, select  # noqa: E402
from moo_compress.search.objectives import Objectives, record_metrics  # noqa: E402
from moo_compress.search.problem import CompressionProblem, PlanEvaluator  # noqa: E402
from moo_compress.search.racing import Racer  # noqa: E402
from moo_compress.search.run import UNTIL_BUDGET, hypervolume, space_spec  # noqa: E402
from moo_compress.search.screening import run_generations, setup_algorithm  # noqa: E402
from moo_compress.search.space import load_space  # noqa: E402
from moo_compress.search.surrogate import Surrogate  # noqa: E402

SPACE = Path(__file__).resolve().parent / "spaces" / "fidelity.yaml"


def _truth(settings: SearchSettings, images: int, executor: ExecutorConfig) -> tuple[dict, dict, np.ndarray, Any]:
    """Search-split and report-split truth records of the reference and every grid plan (cached evaluations)."""
    space = load_space(str(SPACE))
    encoding = space.encoding(model_defaults("resnet20").layer_groups)
    reference = CompressionPlan(recovery=space.recovery)
    plans = [reference] + [encoding.decode(x) for x in encoding.grid()]
    out = []
    for split in ("search", "report"):
        spec = space_spec(settings, space, None, split=split, clean_whole_split=split == "report")
        spec = spec.with_window(0, images).resolved()
        done = [0]

        def show(record: EvaluationRecord, split: str = split, done: list[int] = done) -> None:
            done[0] += 1
            if done[0] % 10 == 0 or done[0] == len(plans):
                print(f"  truth {split}: {done[0]}/{len(plans)} ({record.label}, {record.seconds:.1f}s)",
                      flush=True)

        evaluator = PlanEvaluator(spec, spec.cache_dir or "", executor, on_record=show)
        out.append({p.key(): r for p, r in zip(plans, evaluator(plans), strict=True)})
    test = load_dataset(spec.dataset, "test", data_root=spec.data_root, cache_dir=spec.cache_dir)
    search_spec = space_spec(settings, space, None, split="search").with_window(0, images)
    pool = split_pool(search_spec)
    labels = test.labels[pool[split_order(search_spec, test.labels, pool)]][:images]
    return out[0], out[1], labels, (space, encoding, reference, spec)


_OUTCOMES: dict[int, Any] = {}


def _window_record(record: EvaluationRecord, idx: np.ndarray, clean_idx: np.ndarray, corr: tuple[str, ...],
                   sev: tuple[int, ...]) -> EvaluationRecord:
    if not record.ok:
        return record
    if id(record) not in _OUTCOMES:
        _OUTCOMES[id(record)] = record_outcomes(record, corr, sev)
    out = _OUTCOMES[id(record)]
    clean = out.clean[clean_idx]
    cells = {f"{c}/{s}": out.cells[idx, i, j] for i, c in enumerate(corr) for j, s in enumerate(sev)}
    return EvaluationRecord(plan_key=record.plan_key, label=record.label, plan=record.plan,
                            weights_fingerprint=record.weights_fingerprint,
                            compression_ratio=record.compression_ratio, clean_accuracy=float(clean.mean()),
                            corruption_accuracy={k: float(v.mean()) for k, v in cells.items()},
                            clean_correct=pack_bits(clean),
                            corruption_correct={k: pack_bits(v) for k, v in cells.items()},
                            n_clean=int(clean_idx.size), n_corrupted=int(idx.size * len(cells)), cache_hit=True)


def _replay(truth: dict, labels: np.ndarray, context: Any, *, ladder: tuple[int, ...], racing: bool, seed: int,
            budget: int, select_images: int, pop_size: int, confidence: float = 0.95,
            clean_multiple: int = 1, surrogate: Surrogate | None = None) -> dict[str, Any]:
    """One search replayed on the truth: the plan keys of the returned front and the images spent."""
    space, encoding, reference, spec = context
    corr, sev = spec.corruptions, spec.severities
    perm = np.random.default_rng([seed, 0xF1D]).permutation(len(labels))

    def evaluate_window(plans: list[CompressionPlan], start: int, stop: int) -> list[EvaluationRecord]:
        clean = perm[clean_multiple * start:clean_multiple * stop]
        return [_window_record(truth[p.key()], perm[start:stop], clean, corr, sev) for p in plans]

    objectives = Objectives(robustness=space.robustness, corruptions=corr, severities=sev, baseline_accuracy=0.0)
    racer = Racer(ladder, evaluate_window, reference, objectives, racing=racing, budget_images=budget,
                  cells=len(corr) * len(sev), confidence=confidence, clean_multiple=clean_multiple)
    base = racer.reference_at(ladder[0])
    objectives = dataclasses.replace(objectives, baseline_accuracy=100 * base["clean_accuracy"])
    racer.objectives = objectives
    problem = CompressionProblem(encoding, objectives)
    run_log = EvaluationLog()

    def record_generation(gen: int, X: np.ndarray, records: list[dict[str, Any]]) -> None:
        for x, record in zip(X, records, strict=True):
            run_log.add(record, gen, encoding.values(x))

    algorithm = create_algorithm("nsga2", encoding, pop_size, seed, len(objectives.names))
    setup_algorithm(algorithm, problem, generations=UNTIL_BUDGET, seed=seed)
    run_generations(algorithm, problem, racer, objectives, encoding, pop_size=pop_size,
                    surrogate=surrogate or Surrogate(candidates=1), after=record_generation)
    screening = racer.spent
    frame = evaluation_frame(run_log, objectives, racer.metrics)
    keys = contenders(frame, run_log.records, lambda r: racer.reference_at(int(r.images_per_cell or 0)), objectives,
                      lambda n: labels[perm][:n], limit=2)
    front, _ = select(frame, keys, functools.partial(racer.extend, images=select_images), reference, objectives,
                      images=select_images)
    return {"front": list(front["plan_key"]), "visited": len(run_log.records), "screening_images": screening,
            "images": racer.spent, "stopped": int(frame["stopped"].notna().sum())}


def _sweep(args: argparse.Namespace, truth: dict, labels: np.ndarray, context: Any, budget: int,
           points: dict, true_front: set[str], scale: tuple) -> list[str]:
    """Table of surrogate settings (candidates x optimism) for fixed screening at the same budget."""
    settings = [None] + [Surrogate(k, b) for k in (2, 4, 8) for b in (0.0, 1.0, 2.0)]
    hv: dict[Any, list[float]] = {s: [] for s in settings}
    for seed in range(args.seeds):
        for surrogate in settings:
            run = _replay(truth, labels, context, ladder=(args.fixed_images,), racing=False, seed=seed, budget=budget,
                          select_images=args.select_images, pop_size=args.pop_size, surrogate=surrogate)
            hv[surrogate].append(_scores(run["front"], points, true_front, scale)["hv"])
    base = np.array(hv[None])
    lines = ["| candidates | optimism | HV / true HV, mean (min) | wins vs no surrogate | mean gain (sd) |",
             "|---|---|---|---|---|", f"| off | | {base.mean():.3f} ({base.min():.3f}) | | |"]
    for surrogate in settings[1:]:
        h = np.array(hv[surrogate])
        gain = h - base
        lines.append(f"| {surrogate.candidates} | {surrogate.optimism:g} | {h.mean():.3f} ({h.min():.3f}) | "
                     f"{int((gain > 0).sum())} of {len(h)} | {gain.mean():+.3f} ({gain.std(ddof=1):.3f}) |")
    return lines


def _matched(replay: Any, budget: int, target: int) -> dict[str, Any]:
    """The replay with the largest budget whose total images (screening and selection) stay within ``target``."""
    low, high = budget // 4, budget * 4
    best = replay(budget=low)
    for _ in range(8):
        middle = (low + high) // 2
        run = replay(budget=middle)
        if run["images"] <= target:
            low, best = middle, run
        else:
            high = middle
    return best


def _true_points(report: dict, reference_key: str, objectives: Objectives) -> dict[str, np.ndarray]:
    ref = report[reference_key]
    out = {}
    for key, record in report.items():
        if key == reference_key or not record.ok:
            continue
        out[key] = objectives.objective_vector(record_metrics(record, ref, objectives.corruptions,
                                                              objectives.severities))
    return out


def _scores(front: list[str], points: dict[str, np.ndarray], true_front: set[str], scale: tuple) -> dict[str, float]:
    low, span = scale
    ref = np.full(3, 1.1)
    F = np.array([points[k] for k in front]) if front else np.zeros((0, 3))
    hv = hypervolume((F - low) / span, ref) if len(F) else 0.0
    T = np.array([points[k] for k in true_front])
    hv_true = hypervolume((T - low) / span, ref)
    hits = len(set(front) & true_front)
    return {"hv": hv / hv_true, "precision": hits / max(1, len(front)), "recall": hits / len(true_front),
            "size": len(front)}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--truth-images", type=int, default=1000)
    parser.add_argument("--fixed-images", type=int, default=100)
    parser.add_argument("--ladders", default="10,20,40,100;25,50,100",
                        help="racing ladders to compare, ';'-separated")
    parser.add_argument("--confidences", default="0.95", help="racing confidences to compare, ','-separated")
    parser.add_argument("--clean-multiples", default="1", help="racing clean multiples to compare, ','-separated")
    parser.add_argument("--sweep", action="store_true",
                        help="also compare surrogate settings (candidates x optimism) with fixed screening")
    parser.add_argument("--surrogate", default="off,on",
                        help="surrogate screening of offspring to compare: off, on or off,on")
    parser.add_argument("--select-images", type=int, default=200)
    parser.add_argument("--budget-plans", type=float, default=80 / 3,
                        help="the budget in plans at the fixed fidelity (default: a third of the grid)")
    parser.add_argument("--pop-size", type=int, default=8)
    parser.add_argument("--cache-dir", default=None)
    return parser.parse_args()


def _true_front(points: dict[str, np.ndarray]) -> tuple[set[str], tuple[np.ndarray, np.ndarray]]:
    """The Pareto set of the true points and the scale (low, span) that normalises its range."""
    keys = list(points)
    P = np.array([points[k] for k in keys])
    mask = pareto_mask(P)
    true_front = {k for k, m in zip(keys, mask, strict=True) if m}
    T = P[mask]
    return true_front, (T.min(axis=0), np.maximum(T.max(axis=0) - T.min(axis=0), 1e-9))


def _methods(args: argparse.Namespace, baseline: str) -> dict[str, tuple]:
    """Every compared method: name -> (ladder, racing, confidence, clean multiple, surrogate)."""
    surrogates = {"off": None, "on": Surrogate()}
    modes = [m.strip() for m in args.surrogate.split(",")]
    methods = {baseline: ((args.fixed_images,), False, 0.95, 1, None)}
    if "on" in modes:
        methods[f"{baseline}, surrogate"] = ((args.fixed_images,), False, 0.95, 1, surrogates["on"])
    confidences = [float(c) for c in args.confidences.split(",")]
    multiples = [int(c) for c in args.clean_multiples.split(",")]
    for text in args.ladders.split(";"):
        ladder = tuple(int(x) for x in text.split(","))
        for confidence in confidences:
            for multiple in multiples:
                for mode in modes:
                    name = (f"racing {'/'.join(map(str, ladder))}, confidence {confidence:g}"
                            f"{f', clean x{multiple}' if multiple != 1 else ''}{', surrogate' if mode == 'on' else ''}")
                    methods[name] = (ladder, True, confidence, multiple, surrogates[mode])
    return methods


def _replays(args: argparse.Namespace, methods: dict[str, tuple], search_truth: dict, labels: np.ndarray,
             context: Any, *, budget: int, points: dict[str, np.ndarray], true_front: set[str],
             scale: tuple) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Scores of every method in every seed's replay, at equal budget ("budget") and equal total images
    ("matched")."""
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {"budget": {m: [] for m in methods},
                                                         "matched": {m: [] for m in methods}}
    for seed in range(args.seeds):
        target = None
        for name, (ladder, racing, confidence, multiple, surrogate) in methods.items():
            replay = functools.partial(_replay, search_truth, labels, context, ladder=ladder, racing=racing, seed=seed,
                                       select_images=args.select_images, pop_size=args.pop_size,
                                       confidence=confidence, clean_multiple=multiple, surrogate=surrogate)
            run = replay(budget=budget)
            rows["budget"][name].append({**_scores(run["front"], points, true_front, scale), **run})
            if target is None:  # fixed screening: its total (selection included) is the cost to match
                target = run["images"]
            else:
                run = _matched(replay, budget, target)
            rows["matched"][name].append({**_scores(run["front"], points, true_front, scale), **run})
        print(f"  seed {seed}: " + "; ".join(f"{m} HV {rows['matched'][m][-1]['hv']:.3f}" for m in methods), flush=True)
    return rows


def _table(runs_by_method: dict[str, list[dict[str, Any]]], baseline: str) -> tuple[list[str], dict[str, np.ndarray]]:
    hvs = {name: np.array([r["hv"] for r in runs]) for name, runs in runs_by_method.items()}
    lines = ["| method | HV / true HV, mean (min) | spread (sd) | precision | recall | front size "
             "| plans visited | images, screening + selection | wins vs fixed | mean gain (sd) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in runs_by_method.items():
        hv = hvs[name]
        gain = hv - hvs[baseline]
        wins = "" if name == baseline else f"{int((gain > 0).sum())} of {len(hv)}"
        gains = "" if name == baseline else f"{gain.mean():+.3f} ({gain.std(ddof=1):.3f})"
        lines.append(
            f"| {name} | **{hv.mean():.3f}** ({hv.min():.3f}) | {hv.std(ddof=1):.3f} | "
            f"{np.mean([r['precision'] for r in runs]):.2f} | {np.mean([r['recall'] for r in runs]):.2f} | "
            f"{np.mean([r['size'] for r in runs]):.1f} | {np.mean([r['visited'] for r in runs]):.1f} | "
            f"{np.mean([r['screening_images'] for r in runs]):,.0f} + "
            f"{np.mean([r['images'] - r['screening_images'] for r in runs]):,.0f} | {wins} | {gains} |")
    return lines, hvs


def _versus(hvs: dict[str, np.ndarray], name: str, other: str) -> str:
    gain = hvs[name] - hvs[other]
    return (f"ahead of {other} in {int((gain > 0).sum())} of {len(gain)} seeds, tied in "
            f"{int((gain == 0).sum())} (mean gain {gain.mean():+.3f}, sd {gain.std(ddof=1):.3f})")


def _verdict(hvs: dict[str, np.ndarray], methods: dict[str, tuple], baseline: str) -> str:
    """The best racing variant against fixed screening at equal total images, and where its gain comes from."""
    fixed = hvs[baseline]
    racing = [name for name in methods if name.startswith("racing")]
    best = max(racing, key=lambda name: hvs[name].mean())
    gain = hvs[best] - fixed
    wins = int((gain > 0).sum())
    spread = max(hvs[best].std(ddof=1), fixed.std(ddof=1))
    # one-sided sign test over the seeds that differ: P(at least `wins` of them favour racing | no difference)
    differ = int((gain != 0).sum())
    sign_p = sum(math.comb(differ, k) for k in range(wins, differ + 1)) / 2 ** differ if differ else 1.0
    met = hvs[best].mean() >= 0.97 and wins >= 7 and gain.mean() > spread
    gain_sd = gain.std(ddof=1)
    caveat = (f" (the standard deviation of the per-seed gain, {gain_sd:.3f}, is "
              f"{'larger' if gain_sd >= gain.mean() else 'smaller'} than the margin)") if met else ""
    parts = [f"At equal total images, the best racing variant is **{best}**: mean {hvs[best].mean():.3f} of the true "
             f"hypervolume, {_versus(hvs, best, baseline)}; the margin {gain.mean():+.3f} is larger than the spread "
             f"over seeds of either method ({hvs[best].std(ddof=1):.3f} and {fixed.std(ddof=1):.3f}), and a one-sided "
             f"sign test over the seeds gives p = {sign_p:.3f}. The target (>= 0.97 and ahead of fixed screening in "
             f">= 7 of 10 seeds by a margin larger than the reported spread) is {'**met**' if met else '**not met**'}"
             f"{caveat}."]
    plain = best.replace(", surrogate", "")
    if plain != best and plain in hvs:
        parts.append(f"Where the gain comes from: the same racing without the surrogate reaches "
                     f"{hvs[plain].mean():.3f} ({_versus(hvs, plain, baseline)}); fixed screening with the surrogate "
                     f"reaches {hvs[baseline + ', surrogate'].mean():.3f}, and {best} is "
                     f"{_versus(hvs, best, baseline + ', surrogate')}. The surrogate decides *which* plans are "
                     "measured; racing stops a candidate only when a front plan with at least its compression ratio is "
                     "confidently better in clean accuracy *and* robustness, and on this grid, where a third of the "
                     "plans are Pareto-optimal and most of the rest lose by a few points, 10-50 images rarely "
                     "confirm that, so racing saves few images.")
    return " ".join(parts)


def main() -> None:
    args = _parse_args()
    started = time.perf_counter()
    settings = SearchSettings(TargetSettings("resnet20", space=str(SPACE)),
                              execution=ExecutionSettings(cache_dir=args.cache_dir, device="cpu")).resolved()
    executor = ExecutorConfig(workers=default_workers("cpu", settings.execution.threads))
    print("truth: every grid plan on both splits (cached after the first run) ...", flush=True)
    try:
        search_truth, report_truth, labels, context = _truth(settings, args.truth_images, executor)
    finally:
        close_executors()
    truth_seconds = time.perf_counter() - started
    space, encoding, reference, spec = context
    cells = len(spec.corruptions) * len(spec.severities)
    objectives = Objectives(robustness=space.robustness, corruptions=spec.corruptions, severities=spec.severities,
                            baseline_accuracy=0.0)
    points = _true_points(report_truth, reference.key(), objectives)
    true_front, scale = _true_front(points)
    budget = int(round(args.budget_plans * args.fixed_images * (cells + 1)))
    baseline = f"fixed {args.fixed_images}"
    methods = _methods(args, baseline)
    replay_started = time.perf_counter()
    rows = _replays(args, methods, search_truth, labels, context, budget=budget, points=points,
                    true_front=true_front, scale=scale)
    replay_seconds = time.perf_counter() - replay_started
    sweep = _sweep(args, search_truth, labels, context, budget, points, true_front, scale) if args.sweep else []
    budget_table, _ = _table(rows["budget"], baseline)
    matched_table, hvs = _table(rows["matched"], baseline)
    verdict = _verdict(hvs, methods, baseline)
    body = "\n".join([
        f"ResNet-20, space `benchmarks/spaces/fidelity.yaml` ({len(points)} plans: sparsity x clusters x bits, "
        f"{len(spec.corruptions)} corruptions at severity {'/'.join(map(str, spec.severities))}, batch-norm "
        f"re-estimation on 512 training images, {settings.execution.precision}). **Truth** (one-time cost "
        f"{truth_seconds / 60:.1f} min in this run, {'cached' if truth_seconds < 60 else 'computed'}; about 10 min "
        f"from an empty cache on 2 cores): per-image outcomes of every plan and the reference on the first "
        f"{args.truth_images} images per cell of each split (clean accuracy of the report truth on all "
        f"{report_truth[reference.key()]['n_clean']:,} report images). The true front: {len(true_front)} plans "
        "(Pareto set on the report-split truth).",
        "",
        f"**Replays** ({args.seeds} seeds, {replay_seconds:.0f} s for all): NSGA-II (population {args.pop_size}, seed "
        f"= replay seed) with the search's `Racer`, windows served from the search-split truth in an order "
        f"permuted by the seed, until a budget of **{budget:,} images** (= {args.budget_plans:.1f} plans at the "
        f"fixed fidelity, a third of the grid) is spent; then the front and the plans within its noise are "
        f"brought to {args.select_images} images per cell, as the search does. Equal cost: each racing replay gets "
        f"the largest budget (bisection) whose total images, screening and selection together, do not exceed the "
        f"fixed replay's total for the same seed. Scores use the true report-split "
        f"values of the returned plans: hypervolume (objectives normalised by the true front's range, reference "
        f"point 1.1 in each) as a fraction of the true front's; precision and recall against the true front. "
        "Racing: one-sided tests at (1 - confidence) / (rungs - 1) each; clean xM: M clean images per corrupted "
        "image of a rung; surrogate: offspring screened by Gaussian processes (4 proposals per evaluated plan, "
        "`moo_compress/search/surrogate.py`).",
        "",
        "**At equal total images** (each variant's budget bisected so that its screening and selection together do "
        "not exceed fixed screening's total for the same seed; the search cuts its last generation to the plans "
        "the budget pays for, so the match is within about one plan):",
        "",
        *matched_table,
        "",
        verdict,
        "",
        f"**At equal budget** (`--budget {budget}` for every variant; totals differ by the selection step and the "
        "last plan):",
        "",
        *budget_table,
        *(["", "**Surrogate settings** (fixed 100-image screening at equal budget; candidates = proposals per "
           "evaluated plan, optimism = standard deviations subtracted from the predicted objectives; the default "
           f"is {Surrogate().candidates} and {Surrogate().optimism:g}):", "", *sweep] if sweep else []),
    ])
    write_section("fidelity", "Adaptive fidelity: racing against fixed screening at equal images (issue 13)", body)
    print(body)


if __name__ == "__main__":
    main()
