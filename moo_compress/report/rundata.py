"""Reading a run folder written by the search (nothing is recomputed)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moo_compress import runfolder
from moo_compress.errors import DataNotFoundError

__all__ = ["RUN_ENV", "RunData", "load_run", "find_latest_run", "resolve_run"]

#: Environment variable naming the run folder the notebook opens by default.
RUN_ENV = "MOO_COMPRESS_RUN"
#: The batch-1 latency column (the latency objective).
LATENCY_MS = "latency_ms"
#: ``knees.json`` ``latency`` key -> the metric column it gives the reference.
_REFERENCE_LATENCY = {"reference_ms": "latency_ms", "reference_low_ms": "latency_low_ms",
                      "reference_high_ms": "latency_high_ms", "reference_batch_ms": "latency_batch_ms"}

@dataclass(frozen=True, eq=False)
class RunData:
    """The files of one search run.

    Attributes:
        path: The run folder.
        config: ``config.yaml`` (settings, resolved space, provenance).
        evaluations: ``evaluations.csv``, one row per evaluated plan (``plan`` parsed to a dict).
        pareto: ``pareto.csv``, the Pareto set with ``final/*`` metrics.
        knees: ``knees.json``: baseline metrics and recommendations.
        history: ``history.csv``, one row per generation.
    """

    path: Path
    config: dict[str, Any]
    evaluations: pd.DataFrame
    pareto: pd.DataFrame
    knees: dict[str, Any]
    history: pd.DataFrame

    @property
    def baseline(self) -> dict[str, Any]:
        """Baseline metrics at the final fidelity when available, else at screening fidelity, with the
        reference's latency (:attr:`reference_latency`) where the run measured it."""
        base = self.knees.get("baseline", {})
        metrics = base.get("final") or base.get("screening") or {}
        missing = {k: v for k, v in self.reference_latency.items() if k not in metrics}
        return {**metrics, **missing} if missing and metrics else metrics

    @property
    def screening_baseline(self) -> dict[str, Any]:
        """Baseline metrics at the screening fidelity (comparable with ``evaluations``)."""
        return self.knees.get("baseline", {}).get("screening") or {}

    @property
    def has_final(self) -> bool:
        """Whether the Pareto set and the baseline were re-evaluated at a higher (final) fidelity."""
        return bool(self.knees.get("baseline", {}).get("final")) and bool(self.info.get("final"))

    @property
    def settings(self) -> dict[str, Any]:
        """The run's settings, flat and keyed like the command-line options (``arch``, ``precision``,
        ``split_seed``, ...), from a ``config.yaml`` of any format version
        (:func:`~moo_compress.runfolder.flat_settings`)."""
        return runfolder.flat_settings(self.config)

    @property
    def info(self) -> dict[str, Any]:
        """The ``run:`` provenance block of ``config.yaml`` (arch, dataset, corruptions, fidelities, ...)."""
        return self.config.get("run") or {}

    @property
    def robustness(self) -> str:
        """The metric column the search used as its robustness objective."""
        return str(self.knees.get("robustness") or "mean_corruption_accuracy")

    @property
    def objectives(self) -> list[str]:
        """The objective columns: clean accuracy, robustness, compression ratio, and batch-1 latency
        (``latency_ms``) where the run optimised it."""
        return ["clean_accuracy", self.robustness, "compression_ratio"] + (["latency_ms"] if self.latency_objective
                                                                             else [])

    @property
    def measures_latency(self) -> bool:
        """Whether the run measured plans' latency (as an objective, for a constraint, or both)."""
        if self.latency or self.latency_objective:
            return True
        return any(LATENCY_MS in frame and frame[LATENCY_MS].notna().any() for frame in (self.evaluations, self.pareto))

    @property
    def latency_objective(self) -> bool:
        """Whether batch-1 latency was a (fourth) objective of the search."""
        return LATENCY_MS in (self.knees.get("objectives") or []) or bool((self.latency or {}).get("objective"))

    @property
    def latency(self) -> dict[str, Any] | None:
        """How latency was measured (``knees.json`` ``latency``, else ``config.yaml`` ``run.latency``): runtime,
        threads, rounds, batch size, hardware and the reference's times; None when the run recorded none
        (a run without latency, or one written before this was recorded: see :attr:`latency_settings`)."""
        return self.knees.get("latency") or self.info.get("latency") or None

    @property
    def latency_settings(self) -> dict[str, Any]:
        """The space's ``objectives.latency`` block (runtime, threads, rounds, batch size) merged under
        :attr:`latency`, and ``max_latency_ms`` from its constraints (absent when None)."""
        space = self.config.get("space") or {}
        block = (space.get("objectives") or {}).get("latency")
        out = dict(block) if isinstance(block, dict) else {}
        out.update(self.latency or {})
        limit = (space.get("constraints") or {}).get("max_latency_ms")
        if limit is not None:
            out["max_latency_ms"] = limit
        return out

    @property
    def reference_latency(self) -> dict[str, float]:
        """The reference's latency as metric columns (``latency_ms``, ``latency_low_ms``, ``latency_high_ms``,
        ``latency_batch_ms``): from :attr:`latency`, else from the baseline measured at screening; empty
        without latency. Latency belongs to the deployed structure, so it is the same on every split."""
        out = {column: (self.latency or {}).get(key) for key, column in _REFERENCE_LATENCY.items()}
        out = {k: float(v) for k, v in out.items() if v is not None}
        for source in (self.knees.get("baseline", {}).get(k) or {} for k in ("final", "selection", "screening")):
            for column in _REFERENCE_LATENCY.values():
                if column not in out and source.get(column) is not None:
                    out[column] = float(source[column])
        return out

    @property
    def recommendations(self) -> list[dict[str, Any]]:
        """Knee points and user picks (entries with ``row`` None found no plan)."""
        return list(self.knees.get("recommendations", []))

    @property
    def gene_columns(self) -> list[str]:
        """The ``gene/*`` columns of ``evaluations.csv``, in the order of the run's variables."""
        frame = self.evaluations if len(self.evaluations.columns) else self.pareto
        return [c for c in frame.columns if c.startswith("gene/")]

    @property
    def ok(self) -> pd.DataFrame:
        """The evaluations that succeeded (failed candidates have no metrics)."""
        ev = self.evaluations
        return ev[ev["status"] == "ok"] if "status" in ev else ev

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.name

    def __repr__(self) -> str:
        failed = len(self.evaluations) - len(self.ok)
        return (f"RunData({str(self.path)!r}: {self.info.get('arch')} on {self.info.get('dataset')}, "
                f"{len(self.evaluations)} plans evaluated ({failed} failed), {len(self.pareto)} on the front, "
                f"{'re-evaluated at final fidelity' if self.has_final else 'screening fidelity only'})")


def load_run(path: str | os.PathLike[str]) -> RunData:
    """Reads a run folder (any format version, see :mod:`moo_compress.runfolder`).

    Raises:
        DataNotFoundError: if the folder or one of its files is missing.
    """
    path = Path(path).expanduser()
    return RunData(path=path, **runfolder.read_run(path))


def find_latest_run(root: str | os.PathLike[str] = "outputs") -> Path:
    """The most recently modified finished run folder under ``root``.

    Raises:
        DataNotFoundError: if there is none.
    """
    root = Path(root)
    runs = [p for p in root.glob("*") if (p / runfolder.KNEES).is_file()] if root.is_dir() else []
    if not runs:
        raise DataNotFoundError(f"no finished run under {root}/; run 'python -m moo_compress.search --arch resnet20 "
                                "--quick' first, or name a run folder")
    return max(runs, key=lambda p: (p / runfolder.KNEES).stat().st_mtime)


def resolve_run(run: str | os.PathLike[str] | None = None, *, start: str | os.PathLike[str] = ".") -> Path:
    """The run folder to open: ``run`` if given, else ``$MOO_COMPRESS_RUN``, else the most recent run
    under the first ``outputs/`` folder found in ``start`` or one of its parents (so a notebook in
    ``notebooks/`` finds the project's ``outputs/``).

    Raises:
        DataNotFoundError: if no run folder is named and none is found.
    """
    if run is not None and str(run):
        return Path(run).expanduser()
    env = os.environ.get(RUN_ENV)
    if env:
        return Path(env).expanduser()
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        outputs = folder / "outputs"
        if outputs.is_dir() and any((p / runfolder.KNEES).is_file() for p in outputs.glob("*")):
            return find_latest_run(outputs)
    raise DataNotFoundError(f"no run folder given, ${RUN_ENV} is unset and no finished run was found under "
                            f"outputs/ in {here} or its parents; run 'python -m moo_compress.search --arch resnet20 "
                            f"--quick' first, or name a run folder")
