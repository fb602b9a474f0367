"""Run folders for the report tests: synthetic ones written in the exact format of the search (any
shape in milliseconds: failed candidates, a single-point front, per-group genes, no final
re-evaluation, mCE as robustness), and one real tiny search shared by the slower tests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from moo_compress import paths, runfolder
from moo_compress.compress import ClusterConfig, CompressionPlan, LayerGroup, PruneConfig, QuantizeConfig

CORRUPTIONS = {"gaussian_noise": "noise", "shot_noise": "noise", "defocus_blur": "blur", "snow": "weather",
               "fog": "weather", "contrast": "digital", "jpeg_compression": "digital"}
GROUPS = {"stem": ["conv1"], "layer1": ["layer1.*"], "layer2": ["layer2.*"], "layer3": ["layer3.*"],
          "head": ["linear"]}
CHOICES = {"sparsity": [0.0, 0.5, 0.8], "clusters": ["off", 16, 8], "weight_bits": [32, 8, 4]}
METHODS = [("nbi_knee", "Knee: farthest from the plane through the extreme plans"),
           ("closest_to_ideal", "Closest to the ideal point"),
           ("most_robust_min_ratio", "Most robust with compression ratio >= 8x"),
           ("smallest_within_drop", "Smallest within 2 points of baseline accuracy")]


def _techniques(genes: dict[str, Any]) -> dict[str, Any]:
    return {"prune": PruneConfig(genes["sparsity"]) if genes["sparsity"] else None,
            "cluster": ClusterConfig(genes["clusters"]) if genes["clusters"] != "off" else None,
            "quantize": QuantizeConfig(genes["weight_bits"]) if genes["weight_bits"] != 32 else None}


def _plan(genes: dict[str, dict[str, Any]], per_group: bool) -> CompressionPlan:
    if not per_group:
        return CompressionPlan(**_techniques(genes[""]), exclude_first_conv=True)
    groups = [LayerGroup(g, tuple(GROUPS[g]), **_techniques(genes[g])) for g in GROUPS]
    return CompressionPlan(groups=tuple(groups), exclude_first_conv=True)


def _strength(genes: dict[str, Any]) -> float:
    """log2 of a made-up compression ratio of one set of genes."""
    bits = 32 if genes["weight_bits"] == 32 else genes["weight_bits"]
    clusters = 32 if genes["clusters"] == "off" else math.log2(genes["clusters"])
    return math.log2(32 / min(bits, clusters)) + math.log2(1 / (1 - 0.8 * genes["sparsity"]))


def _metrics(rng: np.random.Generator, log_ratio: float, base: dict[str, float]) -> dict[str, float]:
    clean = 90 - 1.2 * log_ratio**1.6 + rng.normal(0, 1.0)
    out = {"clean_accuracy": clean, "compression_ratio": float(2**log_ratio)}
    for name, family in CORRUPTIONS.items():
        hurt = {"noise": 2.0, "blur": 0.6, "weather": 0.3, "digital": 1.0}[family]
        out[f"acc/{name}"] = base.get(f"acc/{name}", 60.0) - hurt * log_ratio**1.5 + rng.normal(0, 1.5)
    _derive(out, base)
    return out


def _derive(out: dict[str, float], base: dict[str, float]) -> None:
    accs = [out[f"acc/{c}"] for c in CORRUPTIONS]
    out["mean_corruption_accuracy"] = float(np.mean(accs))
    for family in dict.fromkeys(CORRUPTIONS.values()):
        out[f"family/{family}"] = float(np.mean([out[f"acc/{c}"] for c, f in CORRUPTIONS.items() if f == family]))
    base_err = 100 - base.get("mean_corruption_accuracy", out["mean_corruption_accuracy"])
    out["mce"] = 100 * (100 - out["mean_corruption_accuracy"]) / base_err
    out["relative_mce"] = out["mce"] * 1.1


def _baseline(rng: np.random.Generator) -> dict[str, float]:
    out: dict[str, float] = {"clean_accuracy": 91.0, "compression_ratio": 1.0}
    for name, family in CORRUPTIONS.items():
        out[f"acc/{name}"] = {"noise": 45.0, "blur": 70.0, "weather": 75.0, "digital": 72.0}[family] + rng.normal(0, 1)
    _derive(out, {})
    out["mce"] = out["relative_mce"] = 100.0
    return out


#: How the synthetic runs with latency measured it (``knees.json`` / ``config.yaml`` ``run.latency``).
LATENCY_INFO = {"objective": True, "runtime": "onnxruntime", "threads": 1, "rounds": 50, "batch_size": 64,
                "runtime_name": "onnxruntime 1.32.0 CPUExecutionProvider, 1 thread(s)",
                "hardware": "Synthetic CPU @ 3.0GHz, 2 cores", "reference_ms": 2.0, "reference_low_ms": 1.9,
                "reference_high_ms": 2.2, "reference_batch_ms": 110.0,
                "measured": "batch 1: median of 50 timed runs after warm-up, alternating with the reference; spread "
                            "= interquartile range"}
#: ``latency=`` of :func:`write_run`: latency as a fourth objective, or only measured for a constraint.
LATENCY_MODES = ("objective", "constraint")
#: The latency limit of the synthetic runs that constrain latency (ms).
MAX_LATENCY_MS = 1.5


def _latency(rng: np.random.Generator, log_ratio: float, index: int) -> dict[str, Any]:
    """Made-up latency fields of one plan: stronger compression deploys faster, with noise."""
    ms = LATENCY_INFO["reference_ms"] * 2 ** (-0.35 * log_ratio) * float(np.exp(rng.normal(0, 0.05)))
    batch = LATENCY_INFO["reference_batch_ms"] * 2 ** (-0.45 * log_ratio) * float(np.exp(rng.normal(0, 0.05)))
    return {"latency_ms": ms, "latency_low_ms": ms * 0.93, "latency_high_ms": ms * 1.08,
            "latency_speedup": (speedup := LATENCY_INFO["reference_ms"] / ms * float(np.exp(rng.normal(0, 0.01)))),
            "latency_speedup_low": speedup * 0.95, "latency_speedup_high": speedup * 1.05,
            "latency_batch_ms": batch, "latency_batch_speedup": LATENCY_INFO["reference_batch_ms"] / batch,
            "latency_structure": f"{index:016x}"}


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a >= b) and np.any(a > b))


def write_run(folder: Path, *, n_plans: int = 14, failed: int = 0, single: bool = False, per_group: bool = False,
              final: bool = True, robustness: str = "mean_corruption_accuracy", empty_front: bool = False,
              seed: int = 0, flat_settings: bool = False, latency: str | None = None) -> Path:
    """Writes a finished run folder in the search's format; returns it.

    Args:
        folder: Where (created).
        n_plans: Successfully evaluated plans.
        failed: Extra plans that failed (no metrics).
        single: Make one plan dominate all others (a single-point front).
        per_group: One sparsity/clusters/bits gene per layer group (15 genes).
        final: Re-evaluate the front at a final fidelity (else final/* copy the screening values).
        robustness: The robustness objective (``mean_corruption_accuracy`` or ``mce``).
        empty_front: Every candidate failed (no front, no recommendation).
        seed: Random seed of the made-up numbers.
        flat_settings: Write ``settings`` flat, with ``format_version`` 2, as run folders written before
            the settings were grouped (format 3).
        latency: ``"objective"``: batch-1 latency measured and optimised as a fourth objective;
            ``"constraint"``: measured only for ``max_latency_ms`` (:data:`MAX_LATENCY_MS`); None: not measured.
            The other numbers are the same either way.
    """
    assert latency in (None, *LATENCY_MODES), latency
    rng = np.random.default_rng(seed)
    latency_rng = np.random.default_rng(seed + 1000)  # its own stream: the other numbers do not change
    folder.mkdir(parents=True, exist_ok=True)
    base_screen = _baseline(rng)
    base_final = {k: v + (rng.normal(0, 0.3) if k.startswith(("acc/", "clean")) else 0) for k, v in base_screen.items()}
    _derive(base_final, {})
    base_final["mce"] = base_final["relative_mce"] = 100.0
    prefixes = [f"{g}." for g in GROUPS] if per_group else [""]
    n_total = 0 if empty_front else n_plans
    assert n_total <= 27 ** len(prefixes), "more plans than the synthetic space holds"
    rows = _ok_rows(rng, latency_rng, n_total=n_total, prefixes=prefixes, per_group=per_group, latency=latency,
                    base_screen=base_screen)
    if single and rows:
        best = rows[-1]
        best.update({"clean_accuracy": 95.0, "mean_corruption_accuracy": 90.0, "compression_ratio": 40.0, "mce": 10.0})
    rows += _failed_rows(failed if not empty_front else max(failed, 2), prefixes=prefixes, per_group=per_group)
    ev = pd.DataFrame(rows)
    for column in ("clean_accuracy", "mean_corruption_accuracy", "mce", "relative_mce", "compression_ratio"):
        if column not in ev:
            ev[column] = np.nan
    ok = _mark_pareto(ev, robustness=robustness, latency=latency)
    front = _front(ev, rng, final=final, base_final=base_final)
    objectives = ["clean_accuracy", robustness, "compression_ratio"] + (["latency_ms"] if latency == "objective"
                                                                        else [])
    knees = {"baseline": {"screening": base_screen, "final": base_final if final else None},
             "recommendations": _recommendations(front, latency=latency), "objectives": objectives,
             "robustness": robustness}
    latency_info = {**LATENCY_INFO, "objective": latency == "objective"} if latency else None
    if latency:
        knees["latency"] = latency_info
        base_screen.update({"latency_ms": LATENCY_INFO["reference_ms"],
                            "latency_low_ms": LATENCY_INFO["reference_low_ms"],
                            "latency_high_ms": LATENCY_INFO["reference_high_ms"], "latency_speedup": 1.0,
                            "latency_speedup_low": 0.97, "latency_speedup_high": 1.03,
                            "latency_batch_ms": LATENCY_INFO["reference_batch_ms"], "latency_batch_speedup": 1.0})
    config = _config(seed=seed, final=final, flat_settings=flat_settings, per_group=per_group,
                     variables=[f"{p}{k}" for p in prefixes for k in CHOICES], objectives=objectives,
                     robustness=robustness, latency=latency, latency_info=latency_info)
    runfolder.write_config(folder, config)  # the search's own writer
    if flat_settings:
        path = folder / runfolder.CONFIG
        path.write_text(path.read_text().replace(f"format_version: {runfolder.FORMAT_VERSION}", "format_version: 2"))
    runfolder.write_tables(folder, evaluations=ev, pareto=front if len(front) else ev.iloc[:0], knees=knees,
                           history=_history(ev, ok, failed))
    return folder


def _gene_columns(genes: dict[str, dict[str, Any]], prefixes: list[str]) -> dict[str, Any]:
    """The ``gene/*`` columns of one plan (``off`` for a technique switched off)."""
    return {f"gene/{p}{k}": ("off" if genes[p.rstrip(".")][k] in ("off", 32) else genes[p.rstrip(".")][k])
            for p in prefixes for k in CHOICES}


def _ok_rows(rng: np.random.Generator, latency_rng: np.random.Generator, *, n_total: int, prefixes: list[str],
             per_group: bool, latency: str | None, base_screen: dict[str, float]) -> list[dict[str, Any]]:
    """``n_total`` distinct successfully evaluated plans, the uncompressed one first."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < n_total:
        genes = {p.rstrip("."): {k: CHOICES[k][int(rng.integers(len(CHOICES[k])))] for k in CHOICES} for p in prefixes}
        if len(rows) == 0:  # the uncompressed genotype, as the search's first individual
            genes = {p.rstrip("."): {k: CHOICES[k][0] for k in CHOICES} for p in prefixes}
        plan = _plan(genes, per_group)
        if plan.key() in seen:
            continue
        seen.add(plan.key())
        log_ratio = float(np.mean([_strength(g) for g in genes.values()]))
        metrics = _metrics(rng, log_ratio, base_screen)
        if latency:
            metrics.update(_latency(latency_rng, log_ratio, len(rows)))
        row = {"plan_key": plan.key(), "generation": 1 + len(rows) * 3 // max(n_total, 1), "label": plan.label(),
               **_gene_columns(genes, prefixes),
               "status": "ok", "error": None, "cache_hit": False, "seconds": 1.5, **metrics, "feasible": True,
               "plan": plan.to_dict()}
        rows.append(row)
    return rows


def _failed_rows(n: int, *, prefixes: list[str], per_group: bool) -> list[dict[str, Any]]:
    """``n`` plans whose evaluation failed (no metrics)."""
    rows = []
    for i in range(n):
        genes = {p.rstrip("."): {"sparsity": 0.0, "clusters": 8, "weight_bits": 4 if i % 2 else 8} for p in prefixes}
        genes[next(iter(genes))]["sparsity"] = 0.5 + 0.1 * i
        plan = _plan(genes, per_group)
        rows.append({"plan_key": plan.key(), "generation": 1, "label": plan.label(),
                     **_gene_columns(genes, prefixes),
                     "status": "failed", "error": "RuntimeError: simulated clustering failure", "cache_hit": False,
                     "seconds": 0.1, "feasible": False, "plan": plan.to_dict()})
    return rows


def _mark_pareto(ev: pd.DataFrame, *, robustness: str, latency: str | None) -> np.ndarray:
    """Sets ``feasible`` (latency constraint) and ``pareto``; returns the mask of feasible successful plans."""
    ok = (ev["status"] == "ok").to_numpy()
    if latency == "constraint":  # too slow = infeasible, kept out of the front as the search does
        ev["feasible"] = ok & (ev["latency_ms"].to_numpy(float) <= MAX_LATENCY_MS)
        ok = ev["feasible"].to_numpy(bool)
    sign = -1 if robustness in ("mce", "relative_mce") else 1
    F = np.column_stack([ev["clean_accuracy"], sign * ev[robustness], np.log2(ev["compression_ratio"])]) if len(ev) \
        else np.zeros((0, 3))
    if latency == "objective" and len(ev):
        F = np.column_stack([F, -ev["latency_ms"].to_numpy(float)])  # faster is better
    ev["pareto"] = [bool(ok[i]) and not any(ok[j] and _dominates(F[j], F[i]) for j in range(len(ev)))
                    for i in range(len(ev))]
    return ok


def _front(ev: pd.DataFrame, rng: np.random.Generator, *, final: bool, base_final: dict[str, float]) -> pd.DataFrame:
    """The Pareto table: the front's rows with ``final/*`` (re-evaluated when ``final``) and ``select/*``
    latency columns."""
    front = ev[ev["pareto"]].sort_values(["compression_ratio", "clean_accuracy"]).reset_index(drop=True)
    metric_cols = [c for c in ev.columns if c in ("clean_accuracy", "mean_corruption_accuracy", "mce", "relative_mce",
                                                  "compression_ratio") or c.startswith(("family/", "acc/"))]
    for c in metric_cols:
        shift = rng.normal(0, 0.8, len(front)) if final and c.startswith(("acc/", "clean")) else 0.0
        front[f"final/{c}"] = front[c] + shift
    if final and len(front):
        for i in range(len(front)):
            values = {c: float(front.at[i, f"final/{c}"]) for c in metric_cols}
            _derive(values, base_final)
            for c in metric_cols:
                front.at[i, f"final/{c}"] = values[c]
    latency_cols = [c for c in ev.columns if c.startswith("latency_")]
    for c in latency_cols:  # a property of the deployed structure, measured once: the same at every stage
        front[f"select/{c}"] = front[c]
        front[f"final/{c}"] = front[c]
    return front


def _recommendations(front: pd.DataFrame, *, latency: str | None) -> list[dict[str, Any]]:
    """Synthetic picks of every method (none on an empty front)."""
    recommendations: list[dict[str, Any]] = []
    if not len(front):
        return recommendations
    latency_cols = [c for c in front.columns if c.startswith("latency_")]
    picks = [len(front) // 2, len(front) // 2, len(front) - 1, 0]
    for (method, title), row in zip(METHODS, picks, strict=True):
        r = front.iloc[row]
        recommendations.append({
            "method": method, "title": title, "row": int(row), "plan_key": r["plan_key"], "label": r["label"],
            "plan": r["plan"], "clean_accuracy": float(r["final/clean_accuracy"]),
            "mean_corruption_accuracy": float(r["final/mean_corruption_accuracy"]), "mce": float(r["final/mce"]),
            "compression_ratio": float(r["final/compression_ratio"]),
            "rationale": f"synthetic pick of row {row}."})
        if latency:
            recommendations[-1]["latency"] = {k.removeprefix("latency_"): float(r[k]) for k in latency_cols
                                              if k != "latency_structure"}
    recommendations.append({"method": "high_tradeoff", "title": "High trade-off point", "row": None,
                            "rationale": "no plan on the front qualifies"})
    return recommendations


def _history(ev: pd.DataFrame, ok: np.ndarray, failed: int) -> pd.DataFrame:
    """One row per generation."""
    generations = sorted(set(ev["generation"])) if len(ev) else [1]
    return pd.DataFrame({"generation": generations, "evaluations": [int((ev["generation"] <= g).sum()) for g in
                                                                    generations],
                         "new": [int((ev["generation"] == g).sum()) for g in generations],
                         "cache_hits": [0] * len(generations), "failed": [failed] * len(generations),
                         "hypervolume": np.linspace(1.5, 2.0, len(generations)) if ok.any() else 0.0,
                         "front_size": [int(ev["pareto"].sum())] * len(generations),
                         "seconds": np.arange(1, len(generations) + 1) * 10.0})


def _config(*, seed: int, final: bool, flat_settings: bool, per_group: bool, variables: list[str],
            objectives: list[str], robustness: str, latency: str | None,
            latency_info: dict[str, Any] | None) -> dict[str, Any]:
    """``config.yaml``'s content."""
    fidelity = {"n_per_class": 10, "precision": "fp32", "context_key": "f" * 16}
    settings = {"target": {"model": "resnet20", "dataset": "cifar10"}, "algorithm": {"seed": seed},
                "fidelity": {"eval_images": 20, "final_images": 100 if final else 0},
                "execution": {"precision": "fp32"}, "output": {}, "quick": False}
    if flat_settings:
        settings = {"arch": "resnet20", "dataset": "cifar10", "precision": "fp32", "seed": seed,
                    "eval_images": 20, "final_images": 100 if final else 0}
    config = {
        "settings": settings,
        "space": {"name": "synthetic-per-group" if per_group else "synthetic",
                  "granularity": "groups" if per_group else "global",
                  "genes": {k: {"choices": v} for k, v in CHOICES.items()}},
        "run": {"arch": "resnet20", "dataset": "cifar10", "weights": "/nonexistent/resnet20.th", "seed": seed,
                "variables": variables, "layer_groups": GROUPS,
                "objectives": objectives,
                "screening": {"n_per_class": 2, "precision": "fp32", "context_key": "s" * 16},
                "final": fidelity if final else None, "corruptions": list(CORRUPTIONS), "severities": [1, 3, 5],
                "finished": "2026-01-01T00:00:00", "seconds": 123.4},
    }
    if latency:
        config["space"]["objectives"] = {"robustness": robustness, "latency": {
            k: LATENCY_INFO[k] for k in ("runtime", "threads", "rounds", "batch_size")} | {
            "objective": latency == "objective"}}
        config["space"]["constraints"] = {"max_latency_ms": MAX_LATENCY_MS if latency == "constraint" else None}
        config["run"]["latency"] = latency_info
    return config


#: name -> write_run options: the shapes every figure must render.
SCENARIOS = {
    "typical": {},
    "failed_candidate": {"failed": 2},
    "single_point_front": {"n_plans": 4, "single": True},
    "per_group": {"per_group": True, "n_plans": 18},
    "no_final": {"final": False},
    "mce_robustness": {"robustness": "mce"},
    "all_failed": {"empty_front": True},
    "latency_objective": {"latency": "objective"},
    "latency_constraint": {"latency": "constraint"},
}


@pytest.fixture
def synthetic_run(tmp_path: Path) -> Path:
    """A typical synthetic run folder (14 plans, a front of several, final fidelity)."""
    return write_run(tmp_path / "synthetic")


@pytest.fixture
def latency_run(tmp_path: Path) -> Path:
    """A typical synthetic run with batch-1 latency measured as a fourth objective."""
    return write_run(tmp_path / "latency", latency="objective")


@pytest.fixture(params=list(SCENARIOS))
def scenario_run(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Every shape of :data:`SCENARIOS`, one test each."""
    return write_run(tmp_path / request.param, **SCENARIOS[request.param])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run folder from the tiny ResNet-20 search of ``tests/search`` (shared by the session)."""
    from moo_compress.report import render_run
    from moo_compress.search.run import run_search
    from tests.search.conftest import tiny_search_settings

    folder = tmp_path_factory.mktemp("tiny-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.CACHE_ENV, str(folder / "cache"))
        mp.setenv("MOO_COMPRESS_OFFLINE", "1")
        settings = tiny_search_settings(folder)
        run_search(settings, log=lambda _: None, render=render_run)  # as the command line runs it
    return Path(settings.output.out)
