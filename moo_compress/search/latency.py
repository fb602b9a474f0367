"""Measured latency of candidate plans: the deployable form, timed in a quiet phase, cached by structure.

A plan's latency is a property of what it deploys to, not of the test images: the plan is compressed
and exported (:func:`~moo_compress.compress.export_onnx`: structured pruning makes layers smaller,
W8A8 plans become int8 kernels, weight-only plans stay float), and the file is timed in ONNX Runtime on
the CPU against the reference's file in alternation (:func:`~moo_compress.evaluation.measure_deployed`).
With ``runtime: pytorch`` the compressed PyTorch model is timed in eager mode instead.

* **Quiet phase.** :class:`LatencyMeter` runs in the search's main process before a generation's
  plans are evaluated, never while workers evaluate, so timings do not compete with evaluations.
* **Once per structure.** Plans that deploy to the same graph structure
  (:func:`~moo_compress.evaluation.graph_structure`: operators, shapes, integer formats; not weight
  values) share one measurement. Measurements are cached under ``<cache>/latency/`` by (structure,
  runtime, threads, hardware); which structure a plan deploys to is cached by (checkpoint, plan, input
  size, source of the export).
* Latency is measured on this machine and is not part of the evaluation cache's invariance across
  execution modes: the accuracy numbers of a plan are the same on every executor, its latency is what
  this machine measured.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moo_compress import __version__
from moo_compress.compress import CompressionPlan, RecoveryConfig, compress
from moo_compress.deploy import export_onnx
from moo_compress.errors import ConfigError
from moo_compress.fileio import atomic_write_json, stable_hash
from moo_compress.provenance import source_fingerprint
from moo_compress.runfolder import LATENCY_COLUMNS

__all__ = ["LATENCY_RUNTIMES", "LATENCY_FIELDS", "LatencySettings", "LatencyMeter", "speedup_verdict"]

_log = logging.getLogger(__name__)

#: Runtimes a search can time plans in (``objectives.latency.runtime``).
LATENCY_RUNTIMES = ("onnxruntime", "pytorch")
#: Record fields a latency measurement adds (``latency_ms`` is the objective; the rest describe it): the
#: run folder's latency columns (one home: moo_compress.runfolder).
LATENCY_FIELDS = LATENCY_COLUMNS
#: Source files whose code decides which structure a plan deploys to.
_EXPORT_SOURCES = ("compress",)


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"objectives.latency.{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class LatencySettings:
    """How plans' latency is measured (the ``objectives.latency`` block of a search space).

    Attributes:
        objective: Whether batch-1 latency is a fourth objective (minimised). With False (only
            ``constraints.max_latency_ms``) latency is measured, reported and constrained, not optimised.
        runtime: ``onnxruntime`` (the exported ONNX file on the CPU; the default) or ``pytorch`` (the
            compressed model in eager mode, fp32).
        threads: Intra-op threads of the timed runs (fixed, so that measurements compare).
        rounds: Timed batch-1 runs, each in alternation with the reference (the larger batch: a tenth as many).
        batch_size: The larger batch also reported (0 or 1: none).
    """

    objective: bool = True
    runtime: str = "onnxruntime"
    threads: int = 1
    rounds: int = 100
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not isinstance(self.objective, bool):
            raise ConfigError(f"objectives.latency.objective must be true or false, got {self.objective!r}")
        if self.runtime not in LATENCY_RUNTIMES:
            raise ConfigError(f"objectives.latency.runtime must be one of {', '.join(LATENCY_RUNTIMES)}, "
                              f"got {self.runtime!r}")
        object.__setattr__(self, "threads", _positive_int("threads", self.threads))
        object.__setattr__(self, "rounds", _positive_int("rounds", self.rounds, 5))
        object.__setattr__(self, "batch_size", _positive_int("batch_size", self.batch_size, 0))

    @classmethod
    def parse(cls, value: Any) -> LatencySettings | None:
        """From YAML: ``true`` (defaults), ``false``/absent (None: not measured) or a mapping of the fields."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(f"objectives.latency must be true, false or a mapping (runtime, threads, rounds, "
                              f"batch_size, objective), got {value!r}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ConfigError(f"unknown key objectives.latency.{unknown[0]} (allowed: {', '.join(allowed)})")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-able form."""
        return dataclasses.asdict(self)


def speedup_verdict(low: float, high: float) -> str:
    """What a speed-up's spread ``[low, high]`` (interquartile range of per-round ratios) says, in words."""
    if low > 1:
        return "faster than the reference beyond the spread of repeated runs"
    if high < 1:
        return "slower than the reference beyond the spread of repeated runs"
    return "a tie with the reference within the spread of repeated runs"


def _error_info(message: str) -> dict[str, Any]:
    return {"latency_error": message}


class LatencyMeter:
    """Measures plans' deployed latency for a search (called in the main process between evaluations).

    Args:
        settings: What to measure.
        model: The uncompressed model.
        mean: Its normalisation mean.
        std: Its normalisation std.
        input_size: ``(3, height, width)`` it takes.
        weights_sha256: Its checkpoint hash (part of the cache keys).
        calibration: Training images for plans that need them (recovery, activation grids).
        reference_plan: The plan latency is compared with (the uncompressed model after the space's recovery).
        cache_dir: Cache root; measurements live under ``<cache_dir>/latency``.
        log: Progress lines.
    """

    def __init__(self, settings: LatencySettings, *, model: Any, mean: Sequence[float], std: Sequence[float],
                 input_size: Sequence[int], weights_sha256: str, calibration: Any, reference_plan: CompressionPlan,
                 cache_dir: str | os.PathLike[str], log: Callable[[str], None] | None = None) -> None:
        from moo_compress.deploy.latency import hardware, onnx_runtime_name

        self.settings = settings
        self.model, self.mean, self.std = model, tuple(mean), tuple(std)
        self.input_size = tuple(int(v) for v in input_size)
        self.calibration = calibration
        self.reference_plan = reference_plan
        self.root = Path(cache_dir).expanduser() / "latency"
        self.log = log or (lambda line: None)
        if settings.runtime == "onnxruntime":
            runtime = onnx_runtime_name(settings.threads)
        else:
            import torch

            runtime = f"pytorch {torch.__version__} eager fp32, {settings.threads} thread(s)"
        self.runtime = runtime
        self.hardware = hardware()
        self._plans_key = stable_hash({"weights": weights_sha256, "input_size": list(self.input_size),
                                       "runtime": settings.runtime, "version": __version__,
                                       "source": source_fingerprint(_EXPORT_SOURCES)})
        self._measure_key = stable_hash({"runtime": runtime, "hardware": self.hardware,
                                         "rounds": settings.rounds, "batch_size": settings.batch_size})
        self._memory: dict[str, dict[str, Any]] = {}
        self._reference: tuple[str, Path] | None = None

    @classmethod
    def for_spec(cls, settings: LatencySettings, spec: Any, reference_plan: CompressionPlan,
                 log: Callable[[str], None] | None = None) -> LatencyMeter:
        """The meter of ``spec``'s model (an :class:`~moo_compress.search.candidate.EvaluationSpec`), its
        calibration images and cache, timing plans against ``reference_plan``."""
        from moo_compress import paths
        from moo_compress.search.candidate import load_resources

        res = load_resources(spec)
        pre = res.pretrained
        size = pre.input_size or (3, *res.clean.images.shape[1:3])
        return cls(settings, model=pre.model, mean=pre.mean, std=pre.std, input_size=size,
                   weights_sha256=spec.weights_sha256, calibration=res.calibration, reference_plan=reference_plan,
                   cache_dir=spec.cache_dir or str(paths.cache_dir(None)), log=log)

    # -- cache -------------------------------------------------------------------------------------------------------
    def _plan_file(self, plan_key: str) -> Path:
        return self.root / "plans" / self._plans_key / f"{plan_key}.json"

    def _signature_file(self, signature: str) -> Path:
        return self.root / "signatures" / self._plans_key / f"{signature}.json"

    def _measure_file(self, structure: str) -> Path:
        return self.root / "measurements" / self._measure_key / f"{structure}.json"

    def _artifact(self, structure: str) -> Path:
        suffix = ".onnx" if self.settings.runtime == "onnxruntime" else ".pt"
        return self.root / "models" / self._plans_key / f"{structure}{suffix}"

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    # -- deployable forms --------------------------------------------------------------------------------------------
    def _deploy(self, plan: CompressionPlan) -> str:
        """Compresses and exports ``plan``; returns its structure (the exported file is kept once per structure)."""
        known = self._read(self._plan_file(plan.key()))
        if known is not None and self._artifact(known["structure"]).is_file():
            return str(known["structure"])
        # recovery (batch-norm re-estimation, fine-tuning) changes weight values, never the deployed structure
        small = compress(self.model, dataclasses.replace(plan, recovery=RecoveryConfig()), self.calibration)
        signature = self._signature_file(_signature(small))
        same = self._read(signature)  # a plan with the same layer shapes and integer formats was exported
        if same is not None and self._artifact(same["structure"]).is_file():
            atomic_write_json(self._plan_file(plan.key()), {"structure": same["structure"], "label": plan.label()})
            return str(same["structure"])
        if self.settings.runtime == "onnxruntime":
            from moo_compress.deploy.latency import graph_structure

            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.root) as folder:  # beside the store: a rename moves it
                path = Path(folder) / "plan.onnx"
                export_onnx(small, None, path, mean=self.mean, std=self.std, input_size=self.input_size,
                            calibration=self.calibration)
                structure = graph_structure(path)
                target = self._artifact(structure)
                if not target.is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
        else:
            import torch

            from moo_compress.compress.state import compression_state

            quantized = sorted(compression_state(small).activations)  # fake-quantized inputs cost time in eager
            structure = stable_hash({"eager": type(self.model).__name__, "activation_quant": quantized})
            target = self._artifact(structure)
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                torch.save(small, target)
        atomic_write_json(self._plan_file(plan.key()), {"structure": structure, "label": plan.label()})
        atomic_write_json(signature, {"structure": structure})
        return structure

    def _measure(self, structure: str, reference: str) -> dict[str, Any]:
        cached = self._read(self._measure_file(structure))
        if cached is not None:
            return cached
        if self.settings.runtime == "onnxruntime":
            from moo_compress.deploy.latency import measure_deployed

            result = measure_deployed(self._artifact(structure), self._artifact(reference),
                                      threads=self.settings.threads, rounds=self.settings.rounds,
                                      batch_size=self.settings.batch_size).to_dict()
        else:
            result = self._measure_eager(structure, reference)
        atomic_write_json(self._measure_file(structure), result)
        return result

    def _measure_eager(self, structure: str, reference: str) -> dict[str, Any]:
        import torch

        from moo_compress.deploy.latency import measure_paired
        from moo_compress.evaluation.evaluator import fold_batchnorm

        models = [fold_batchnorm(torch.load(self._artifact(s), map_location="cpu", weights_only=False).eval())
                  for s in (reference, structure)]
        threads = torch.get_num_threads()
        torch.set_num_threads(self.settings.threads)
        try:
            x = torch.randn(max(1, self.settings.batch_size), *self.input_size,
                            generator=torch.Generator().manual_seed(0))
            return measure_paired(models[1], models[0], x, rounds=self.settings.rounds,
                                  batch_size=self.settings.batch_size, runtime=self.runtime).to_dict()
        finally:
            torch.set_num_threads(threads)

    def _reference_structure(self) -> str:
        if self._reference is None:
            structure = self._deploy(self.reference_plan)
            self._reference = (structure, self._artifact(structure))
        return self._reference[0]

    # -- public ------------------------------------------------------------------------------------------------------
    def __call__(self, plans: Sequence[CompressionPlan]) -> dict[str, dict[str, Any]]:
        """Latency fields (:data:`LATENCY_FIELDS`) of each plan by plan key, or ``{"latency_error": ...}``
        for a plan that could not be compressed, exported or run."""
        out: dict[str, dict[str, Any]] = {}
        todo = [p for p in plans if p.key() not in self._memory]
        if todo:
            reference = self._reference_structure()
            measured = 0
            for plan in todo:
                try:
                    structure = self._deploy(plan)
                    fresh = not self._measure_file(structure).is_file()
                    result = self._measure(structure, reference)
                    measured += fresh
                    self._memory[plan.key()] = {
                        "latency_ms": result["ms"], "latency_low_ms": result["low_ms"],
                        "latency_high_ms": result["high_ms"], "latency_speedup": result["speedup"],
                        "latency_speedup_low": result["speedup_low"], "latency_speedup_high": result["speedup_high"],
                        "latency_batch_ms": result["batch_ms"], "latency_batch_speedup": result["batch_speedup"],
                        "latency_structure": structure}
                except Exception as exc:  # noqa: BLE001 - a plan that cannot deploy is a failed candidate
                    _log.debug("latency of %s failed:\n%s", plan.label(), traceback.format_exc())
                    self._memory[plan.key()] = _error_info(f"{type(exc).__name__}: {exc}"[:500])
            if measured:
                self.log(f"  latency: measured {measured} new structure(s) of {len(todo)} plan(s) "
                         f"({self.runtime}, batch 1, median of {self.settings.rounds} runs)")
        for plan in plans:
            out[plan.key()] = self._memory[plan.key()]
        return out

    def describe(self) -> dict[str, Any]:
        """What the measurements of this meter mean (for ``config.yaml`` and the summary)."""
        reference = self._measure(self._reference_structure(), self._reference_structure())
        return {**self.settings.to_dict(), "runtime_name": self.runtime, "hardware": self.hardware,
                "reference_ms": reference["ms"], "reference_low_ms": reference["low_ms"],
                "reference_high_ms": reference["high_ms"], "reference_batch_ms": reference["batch_ms"],
                "measured": f"batch 1: median of {self.settings.rounds} timed runs after warm-up, alternating with "
                            "the reference; spread = interquartile range"}


def _signature(model: Any) -> str:
    """What decides a compressed model's deployed structure, read without exporting it: the number of
    all-zero output filters of every compressed layer (structured pruning shrinks those layers) and the
    input grids of at most 8 bits with each layer's weight grid (the int8 layers and their formats).
    Plans with the same signature deploy to the same graph structure, so one export serves them all."""
    import numpy as np

    from moo_compress.compress.state import compression_state

    state = compression_state(model)
    modules = dict(model.named_modules())
    zero_filters = {}
    for name in sorted(state.layers):
        weight = modules[name].weight.detach().cpu().numpy()
        zero_filters[name] = int(np.count_nonzero(~weight.reshape(weight.shape[0], -1).any(axis=1)))
    int8 = {}
    for name, grid in sorted(state.activations.items()):
        if grid.bits <= 8:
            quant = state.layers[name].quant if name in state.layers else None
            int8[name] = [int(grid.bits), None if quant is None else
                          [int(quant.bits), bool(np.all(np.asarray(quant.zero_point) == 0))]]
    return stable_hash({"zero_filters": zero_filters, "int8": int8, "type": type(model).__name__})
