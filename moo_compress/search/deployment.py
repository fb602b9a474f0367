"""Deployment: the recommended plans exported as ONNX files into the run folder, and their clean top-1
in ONNX Runtime checked against PyTorch's on the same report images (runs that measure latency)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from moo_compress.compress import CompressionPlan
from moo_compress.search.candidate import EvaluationSpec, load_resources

__all__ = ["deployed", "export_and_check", "plan_file_name", "ONNX_TOLERANCE"]

logger = logging.getLogger("moo_compress.search")

#: Most points an ONNX file's clean top-1 may differ from the PyTorch model's: weight-only (float) graphs
#: compute what PyTorch computes; int8 QDQ graphs round in ONNX Runtime's kernels.
ONNX_TOLERANCE = {"float": 0.5, "qdq": 1.0}



def plan_file_name(arch: str, plan: CompressionPlan, suffix: str) -> str:
    """``<arch>-<label>-<key>`` + ``suffix``: a file name for a plan's exported model (a model of one's own
    is named by its file-name-safe slug, never its path)."""
    from moo_compress.models.sources import is_source, source_slug

    name = source_slug(arch) if is_source(arch) else arch
    return f"{name}-{plan.label().replace(' ', '_')}-{plan.key()[:8]}{suffix}"



def export_and_check(spec: EvaluationSpec, plans: list[CompressionPlan], files: dict[str, Path],
                     log: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Writes each plan's compressed model as an ONNX file (``files``: plan key -> path) and measures its
    clean top-1 in ONNX Runtime and in PyTorch on the clean images of ``spec``; each file's line goes to ``log``
    (default: the search's logger).

    Returns plan key -> ``{"path", "kind" (float | qdq), "bytes", "removed_filters", "images",
    "onnx_accuracy", "torch_accuracy" (percent), "gap" (points, ONNX minus PyTorch), "within"
    (|gap| <= :data:`ONNX_TOLERANCE` of its kind)}``.
    """
    from moo_compress.deploy import export_onnx
    from moo_compress.deploy.onnx_model import OnnxModel
    from moo_compress.evaluation import Evaluator
    from moo_compress.search.candidate import compressed_model

    say = log or logger.info
    res = load_resources(spec)
    pre = res.pretrained
    size = pre.input_size or (3, *res.clean.images.shape[1:3])
    images, labels = res.clean.images, res.clean.labels
    out = {}
    for plan in plans:
        model = compressed_model(spec, res, plan)  # the one kept by the report stage, when it kept it
        result = export_onnx(model, None, files[plan.key()], mean=pre.mean, std=pre.std, input_size=size,
                             calibration=res.calibration, arch=spec.arch)
        onnx_accuracy = 100.0 * OnnxModel(result.path).accuracy(images, labels)
        torch_accuracy = 100.0 * Evaluator(model, mean=pre.mean, std=pre.std, device="cpu").accuracy(images, labels)
        gap = onnx_accuracy - torch_accuracy
        out[plan.key()] = {"path": str(result.path), "kind": result.kind, "bytes": result.bytes,
                           "removed_filters": result.removed_filters, "images": int(len(images)),
                           "onnx_accuracy": onnx_accuracy, "torch_accuracy": torch_accuracy, "gap": gap,
                           "within": abs(gap) <= ONNX_TOLERANCE[result.kind]}
        say(f"  ONNX {result.path} ({'int8 QDQ' if result.kind == 'qdq' else 'float weights'}, {result.bytes:,} "
            f"bytes): clean top-1 {onnx_accuracy:.2f}% in ONNX Runtime, {torch_accuracy:.2f}% in PyTorch on the same "
            f"{len(images):,} images ({gap:+.2f} points; allowed {ONNX_TOLERANCE[result.kind]:g})")
    return out



def deployed(front: pd.DataFrame, rows: list[int], spec: EvaluationSpec,
             folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Exports the ``front`` rows ``rows`` as ONNX files into ``folder`` and checks them (:func:`export_and_check`)
    on the clean images of ``spec`` (the report split). Adds ``onnx/path``, ``onnx/kind``, ``onnx/accuracy``,
    ``onnx/gap`` and ``onnx/within`` (NaN / None for rows not exported)."""
    front = front.copy()
    for column in ("onnx/path", "onnx/kind", "onnx/within"):
        front[column] = pd.Series([None] * len(front), index=front.index, dtype=object)
    for column in ("onnx/accuracy", "onnx/torch_accuracy", "onnx/gap"):
        front[column] = math.nan
    if not rows:
        return front, {"rows": [], "images": 0}
    plans = [CompressionPlan.from_dict(front["plan"].iloc[i]) for i in rows]
    files = {p.key(): folder / plan_file_name(spec.arch, p, ".onnx") for p in plans}
    checked = export_and_check(spec, plans, files)
    for i, plan in zip(rows, plans, strict=True):
        c = checked[plan.key()]
        index = front.index[i]
        front.at[index, "onnx/path"] = str(Path(c["path"]).name)
        front.at[index, "onnx/kind"] = c["kind"]
        front.at[index, "onnx/within"] = bool(c["within"])
        front.loc[index, ["onnx/accuracy", "onnx/torch_accuracy", "onnx/gap"]] = \
            [c["onnx_accuracy"], c["torch_accuracy"], c["gap"]]
    images = next(iter(checked.values()))["images"]
    outside = [front["label"].iloc[i] for i, plan in zip(rows, plans, strict=True) if not checked[plan.key()]["within"]]
    logger.info(f"deployed: {len(rows)} recommended plan(s) exported to {folder}/ and run in ONNX Runtime on "
        f"{images:,} {spec.split}-split images; " + (f"outside the tolerance: {', '.join(outside)}" if outside else
                                          "every one within the tolerance of its PyTorch top-1"))
    return front, {"rows": list(rows), "images": images, "folder": folder.name, "tolerance": dict(ONNX_TOLERANCE)}
