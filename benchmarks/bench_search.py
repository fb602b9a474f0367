"""Search quality and replay speed (issue 5).

(a) ResNet-20 over a modest global space whose every plan is evaluated once (and cached): the
hypervolume NSGA-II reaches with k evaluations, against random search with the same k and against
the whole grid, as ratios (mean and min over seeds). NSGA-II and random search then cost only cache
look-ups, so several seeds are cheap.
(b) The wall time of a replayed search (same command, everything cached) against the original.

    python benchmarks/bench_search.py [--space benchmarks/spaces/resnet20_grid.yaml] [--eval-images 100] [--seeds 10]

Needs the ResNet-20 checkpoint and CIFAR-10 (``$MOO_COMPRESS_WEIGHTS``, ``$MOO_COMPRESS_DATA``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _results import write_section

from moo_compress.models import model_defaults
from moo_compress.search import ExecutionSettings, FidelitySettings, SearchSettings, TargetSettings
from moo_compress.search.run import hypervolume, pareto_mask, run_search
from moo_compress.search.space import SearchSpace, load_space


def objectives(frame: pd.DataFrame) -> np.ndarray:
    """Minimised objectives of the feasible plans of an evaluations table (the search's own HV convention)."""
    ok = frame[frame["feasible"].astype(bool)]
    return np.column_stack([-ok["clean_accuracy"] / 100, -ok["mean_corruption_accuracy"] / 100,
                            -np.log2(ok["compression_ratio"])])


def front_hv(F: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume of the non-dominated rows of F."""
    return hypervolume(F[pareto_mask(F)], reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--space", default=str(Path(__file__).parent / "spaces" / "resnet20_grid.yaml"))
    parser.add_argument("--eval-images", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cache-dir", help="reuse a cache (default: a fresh temporary one)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_search_"))
    cache = args.cache_dir or str(tmp / "cache")
    base = SearchSettings(TargetSettings(args.arch, space=args.space),
                          fidelity=FidelitySettings(eval_images=args.eval_images, final_images=0),
                          execution=ExecutionSettings(cache_dir=cache))
    space = load_space(args.space)
    encoding = space.encoding(model_defaults(args.arch).layer_groups)
    grid = encoding.grid_size()
    budget = grid // 4
    pop = space.pop_size  # the space's own NSGA-II settings, within a quarter of the grid
    gens = min(space.generations, budget // pop)

    # (a) the whole grid, evaluated once (the space's grid order), then NSGA-II and random search from the cache
    grid_run = run_search(_grid_settings(base, tmp, space), log=print)
    ev = grid_run.evaluations
    grid_seconds = float(ev["seconds"].sum())  # evaluation time of every plan (also when read from the cache)
    reference = np.zeros(3)
    hv_grid = front_hv(objectives(ev), reference)

    nsga, rand = [], []
    for seed in range(args.seeds):
        run = run_search(base.replace(output={"out": str(tmp / f"nsga{seed}")},
                                      algorithm={"seed": seed, "pop_size": pop, "generations": gens,
                                                 "max_evals": budget}),
                         log=lambda _: None)
        nsga.append((front_hv(objectives(run.evaluations), reference), len(run.evaluations)))
        pick = np.random.default_rng(seed).choice(len(ev), size=min(len(run.evaluations), len(ev)), replace=False)
        rand.append(front_hv(objectives(ev.iloc[pick]), reference))

    hv_nsga = np.array([h for h, _ in nsga])
    evals = np.array([n for _, n in nsga])
    hv_rand = np.array(rand)

    # (b) replay: the same NSGA-II command twice on a fresh cache
    replay_cache = str(tmp / "replay-cache")
    settings = base.replace(output={"out": str(tmp / "replay")}, execution={"cache_dir": replay_cache},
                            algorithm={"pop_size": pop, "generations": gens}, fidelity={"final_images": 200})
    t0 = time.perf_counter()
    run_search(settings, log=lambda _: None)
    original = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_search(settings, log=lambda _: None)
    replay = time.perf_counter() - t0

    body = f"""
{args.arch}, space `{space.name}` ({grid} plans; constraint: at most {space.max_accuracy_drop:g} points of
clean-accuracy loss), screening fidelity {args.eval_images} images per (corruption,
severity) and for clean accuracy, bf16. Evaluating the whole grid once took {grid_seconds / 60:.1f} min;
NSGA-II (population {pop}, {gens} generations, at most {budget} evaluations = a quarter of the grid) and random
search with the same number of evaluations were then run for {args.seeds} seeds from the cache.
Hypervolume of the feasible front (objectives -accuracy, -mean corruption accuracy, -log2 ratio; reference
point 0), as the search itself reports it; random search draws plans uniformly from the grid:

| method | evaluations | HV / grid HV (mean) | (min over seeds) |
|---|---|---|---|
| whole grid | {grid} | 1.000 | |
| NSGA-II | {evals.mean():.0f} ({100 * evals.mean() / grid:.0f}% of the grid) | {np.mean(hv_nsga) / hv_grid:.3f} \
| {np.min(hv_nsga) / hv_grid:.3f} |
| random search | same as NSGA-II | {np.mean(hv_rand) / hv_grid:.3f} | {np.min(hv_rand) / hv_grid:.3f} |

NSGA-II beats random search in {int(np.sum(hv_nsga > hv_rand))} of {args.seeds} seeds (mean HV ratio NSGA-II /
random = {np.mean(hv_nsga / hv_rand):.3f}). Targets: NSGA-II >= 0.95 of the grid's HV with <= 25% of its
evaluations, and above random search.

Replay: the same NSGA-II command (final re-evaluation on 200 images included) took {original:.1f} s from an empty
cache and {replay:.1f} s when replayed: **{100 * replay / original:.1f}%** of the original time.
"""
    write_section("search", "Search quality and replay (issue 5)", body)


def _grid_settings(base: SearchSettings, tmp: Path, space: SearchSpace) -> SearchSettings:
    """The same space evaluated exhaustively (a copy of the space file with ``algorithm: grid``)."""
    import yaml

    data = space.to_dict()
    data["algorithm"] = {"name": "grid", "pop_size": 30}
    path = tmp / f"{space.name}-grid.yaml"  # in the run's temporary folder, never beside the space file
    path.write_text(yaml.safe_dump(data))
    return base.replace(output={"out": str(tmp / "grid")}, target={"space": str(path)})


if __name__ == "__main__":
    main()
