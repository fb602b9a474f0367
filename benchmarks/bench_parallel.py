"""Parallel evaluation of a search generation (issue 7): serial vs 2 local processes vs a 2-worker Dask
LocalCluster, measured in one run, plus the per-task overhead of the Dask path.

    python benchmarks/bench_parallel.py [--arch resnet20] [--plans 16] [--eval-images 20 100]

Each mode evaluates the same plans (one NSGA-II generation's worth, drawn from the architecture's space)
into its own empty cache, so every plan is really computed. Worker start-up is measured separately, on a
few warm-up plans, since a search pays it once per run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _results import write_section

from moo_compress.models import model_defaults
from moo_compress.search.executors import ExecutorConfig, close_executors
from moo_compress.search.problem import PlanEvaluator
from moo_compress.search.run import run_search, space_spec
from moo_compress.search.settings import (
    ExecutionSettings,
    FidelitySettings,
    OutputSettings,
    SearchSettings,
    TargetSettings,
)
from moo_compress.search.space import default_space, load_space


def _noop(x: int) -> int:
    return x


def dask_overhead(n: int = 200) -> float:
    """Seconds per task of joblib's Dask backend on a 2-worker LocalCluster, for a task doing nothing."""
    from dask.distributed import Client, LocalCluster
    from joblib import Parallel, delayed, parallel_config

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster), parallel_config(backend="dask"):
        Parallel()(delayed(_noop)(i) for i in range(10))  # warm-up
        start = time.perf_counter()
        Parallel()(delayed(_noop)(i) for i in range(n))
        return (time.perf_counter() - start) / n


def whole_search(arch: str, images: int, workers: int, root: Path) -> tuple[float, pd.DataFrame, set[str]]:
    """Seconds of ``python -m moo_compress.search --arch ARCH --eval-images N --workers W`` from an empty
    cache, its screening evaluations and the plans of its Pareto set."""
    settings = SearchSettings(TargetSettings(arch), fidelity=FidelitySettings(eval_images=images),
                              execution=ExecutionSettings(workers=workers, cache_dir=str(root / f"cache-w{workers}")),
                              output=OutputSettings(out=str(root / f"run-w{workers}")))
    start = time.perf_counter()
    result = run_search(settings, log=lambda _: None)
    seconds = time.perf_counter() - start
    close_executors()
    torch.set_num_threads(os.cpu_count() or 1)
    return seconds, result.evaluations, set(result.pareto["plan_key"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--plans", type=int, default=16, help="plans in the measured generation")
    parser.add_argument("--warmup", type=int, default=4, help="plans evaluated first, to start the workers")
    parser.add_argument("--eval-images", type=int, nargs="+", default=[20, 100],
                        help="fidelities measured (images per corruption and severity)")
    parser.add_argument("--search-images", type=int, default=20,
                        help="fidelity of the whole searches run with --workers 1 and 2 (0 skips them)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_parallel_"))
    defaults = model_defaults(args.arch)
    space = load_space(default_space(defaults.family))
    encoding = space.encoding(defaults.layer_groups)
    rng = np.random.default_rng(0)
    drawn = [encoding.decode(rng.integers(0, encoding.upper_bounds + 1)) for _ in range(4 * args.plans)]
    unique = list({p.key(): p for p in drawn}.values())
    warmup, plans = unique[:args.warmup], unique[args.warmup:args.warmup + args.plans]

    modes = (("serial (1 process, 2 threads)", ExecutorConfig()),
             ("serial (1 process, 1 thread)", ExecutorConfig(threads_per_worker=1)),
             ("joblib/loky, 2 workers x 1 thread", ExecutorConfig(workers=2)),
             ("Dask LocalCluster, 2 workers x 1 thread", ExecutorConfig(workers=2, scheduler="local")))
    rows = []
    for images in args.eval_images:
        seconds = {}
        for i, (name, config) in enumerate(modes):
            settings = SearchSettings(TargetSettings(args.arch), fidelity=FidelitySettings(eval_images=images),
                                      execution=ExecutionSettings(cache_dir=str(tmp / f"{images}-{i}")))
            spec = space_spec(settings.resolved(), space, images).resolved()  # images prepared once, here
            evaluator = PlanEvaluator(spec, spec.cache_dir or "", config)
            start = time.perf_counter()
            evaluator(warmup)  # worker start-up: spawn, import, load the model and the images once
            startup = time.perf_counter() - start
            start = time.perf_counter()
            records = evaluator(plans)
            seconds[name] = time.perf_counter() - start
            close_executors()
            torch.set_num_threads(os.cpu_count() or 1)
            failed = [r.error for r in records if not r.ok]
            if failed:
                raise SystemExit(f"{name}: failed evaluations: {failed}")
            serial = seconds[modes[0][0]]
            rows.append(f"| {images} | {name} | {startup:.1f} | {seconds[name]:.1f} | {serial / seconds[name]:.2f}x |")
            print(rows[-1], flush=True)
    overhead = dask_overhead()
    searches = ""
    if args.search_images:
        (one, evals1, front1), (two, evals2, front2) = (whole_search(args.arch, args.search_images, w, tmp)
                                                        for w in (1, 2))
        both = evals1.merge(evals2, on="plan_key", suffixes=("_1", "_2"))
        clean_diff = (both["clean_accuracy_1"] - both["clean_accuracy_2"]).abs()
        corr_diff = (both["mean_corruption_accuracy_1"] - both["mean_corruption_accuracy_2"]).abs()
        searches = f"""
Whole searches, `python -m moo_compress.search --arch {args.arch} --eval-images {args.search_images} --workers W`
(the space's default population and generations, the Pareto set re-evaluated at the default final
fidelity), each from an empty cache: `--workers 1` **{one:.0f} s**, `--workers 2` **{two:.0f} s**, speed-up
**{one / two:.2f}x**, worker start-up and corruption generation included.

The two searches are not bit-identical: a serial run evaluates with 2 torch threads, a worker with 1,
and batch-norm re-estimation and bf16 convolutions reduce in a thread-dependent order. On the
{len(both)} plans both searches evaluated, screening clean accuracy differed by {clean_diff.mean():.2f} points on
average (at most {clean_diff.max():.1f}: one image is {100 / args.search_images:.0f} points at this fidelity) \
and mean corruption
accuracy by {corr_diff.mean():.3f} (at most {corr_diff.max():.2f}); such differences steer NSGA-II to partly
different plans, and {len(front1 & front2)} of the {len(front1)} and {len(front2)} Pareto plans are shared. \
Runs with the
same threads per worker compute the same numbers (`--workers 2`, with or without `--scheduler local`);
the tests check that serial, process and Dask runs of a small fp32 search give the same Pareto set.
"""

    table = "\n".join(rows)
    body = f"""
One generation of a {args.arch} search: {len(plans)} distinct plans of the `{default_space(defaults.family)}` space,
each compressed, batch-norm re-estimated and evaluated on N clean images and N images for each of
15 corruptions x 5 severities (bf16; N = {" and ".join(map(str, args.eval_images))}, the `--quick` and default
screening fidelities), every plan computed (empty caches). Each executor first evaluates {len(warmup)} other plans, \
which starts its workers (spawning them,
importing torch, loading the checkpoint and the images once per worker); a search pays that once per run,
as the workers persist across generations.

| N | executor | start-up + {len(warmup)} warm-up plans (s) | generation (s) | generation speed-up vs serial |
|---|---|---|---|---|
{table}
{searches}
**Reading the table.** A serial run is not single-core: torch's intra-op threads already spread each
forward pass over both cores (compare the two serial rows), so worker processes gain only what
intra-op threading loses, which is most for small batches, where two threads share each layer badly
(N = 20), and less when a serial batch is large enough for both threads (N = 100). Both kinds of
parallelism are held back by the cores' shared cache and memory bandwidth; the evaluator runs a
1-thread worker at 64 images per batch, which keeps its activations in its own core's cache, and
folds batch norms into convolutions, which saves a pass over every activation. Workers pay off more
with more cores per machine, with GPUs (one worker each) and across machines with Dask.

Per-task overhead of the Dask path (joblib's Dask backend on a 2-worker LocalCluster, tasks that do
nothing): **{1000 * overhead:.1f} ms per task**, against seconds per evaluation.

**Running on a real cluster.** Start a scheduler (`dask scheduler`, port 8786) and one or more workers
per node (`dask worker tcp://scheduler:8786 --nworkers 1 --nthreads 1` per GPU or per few cores; on SLURM,
`dask_jobqueue.SLURMCluster` starts them as jobs), then run the search with
`--scheduler tcp://scheduler:8786`. Start the workers with
`DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None` in their environment (or
`--no-nanny`): Dask's default `MALLOC_TRIM_THRESHOLD_=65536` pins glibc's mmap threshold, every
activation tensor is then mapped and unmapped, and evaluation runs about 2x slower (measured here:
a 1-thread evaluation of 8 ResNet-20 plans took 53.5 s with it, 23.1 s without; the LocalCluster that
`--scheduler local` starts already unsets it). Tasks carry only the evaluation spec (paths, hashes, fidelity) and a
plan, so every worker must see, at the same paths: the checkpoint (`--weights`), the dataset
(`--data-root` or `$MOO_COMPRESS_DATA`), the CIFAR-C release if one is used, and the cache directory
(`--cache-dir`, a shared file system; workers write their results there atomically, so concurrent
writers and concurrent runs are safe). Each worker loads the model and images once and keeps them
for later tasks. A worker lost mid-task leaves no partial cache entry; its plan is re-submitted once
and, if lost again, recorded as failed.
"""
    write_section("parallel", "Parallel and distributed evaluation (issue 7)", body)


if __name__ == "__main__":
    main()
