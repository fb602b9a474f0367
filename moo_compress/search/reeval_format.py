"""The plain-text report of a re-evaluation, as ``python -m moo_compress.evaluate --run`` prints it."""

from __future__ import annotations

import math
from pathlib import Path

from moo_compress.search.latency import speedup_verdict
from moo_compress.search.reeval_results import LatencyInfo, ModelResult, Reevaluation

__all__ = ["format_results"]


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _table_line(model: ModelResult) -> str:
    if not model.ok:
        return f"{model.name:<28} {str(model.label)[:26]:<26} failed: {model.error}"
    # the table's mCE is the paired claim's estimate when there is one (as in the frame's ``mce`` column)
    mce = model.claims.mce.estimate if model.claims is not None else model.metric("mce")
    return (f"{str(model.name)[:28]:<28} {str(model.label)[:26]:<26} {model.metric('clean_accuracy'):8.2f} "
            f"{model.metric('mean_corruption_accuracy'):7.2f} {mce:6.1f} {model.metric('compression_ratio'):7.2f} "
            f"{'yes' if model.cached else 'no':>6}")


def _claims_lines(model: ModelResult) -> list[str]:
    claims = model.claims
    assert claims is not None
    clean, mca = claims.clean_delta.format(1), claims.mca_delta.format(1)
    mce = claims.mce.format(1, signed=False)
    return [f"  {model.name} ({model.label}) against the {model.compared_to}:",
            f"      clean {clean} points, mean corruption accuracy {mca} points, mCE {mce}",
            (f"      worst class {claims.worst_class}: {claims.worst_class_delta.format(1)} points; worst corruption "
             f"{claims.worst_corruption}: {claims.worst_corruption_delta.format(1)} points; "
             f"{claims.changed_predictions:,} of {claims.n_clean:,} clean predictions changed")]


def _comparison_lines(result: Reevaluation) -> list[str]:
    compared = [m for m in result.models if m.compared_to is not None and m.ok]
    if not compared:
        return []
    references = result.references
    what = (f"recovery: {next(iter(references.values()))}" if len(references) == 1
            else "; ".join(f"{k}" for k in references))
    lines = ["", (f"Against the reference, the uncompressed model after the plans' recovery ({what}), on the same "
                  f"images; paired {result.level:.0%} intervals:")]
    for model in compared:
        if model.claims is None or math.isnan(model.claims.clean_delta.low):
            lines.append(f"  {model.name} ({model.label}): no paired claims (the reference failed or kept no "
                         "per-image outcomes)")
            continue
        lines += _claims_lines(model)
    lines.append("The intervals cover the sampling of test images only: not the calibration images, the search's "
                 "seed or another test distribution.")
    return lines


def _export_lines(result: Reevaluation) -> list[str]:
    exported = [m for m in result.models if m.export is not None]
    dense = result.dense_bytes or 0
    lines = []
    if exported:
        lines.append(f"\nexported to {Path(exported[0].export.path).parent}/ (fp32 state_dict: {dense:,} bytes)")
    for model in exported:
        size, gz = int(model.export.bytes), int(model.export.gzip_bytes)
        lines.append(f"  {Path(model.export.path).name}: {size:,} bytes ({dense / size:.1f}x smaller), gzip {gz:,} "
                     f"bytes ({dense / gz:.1f}x)")
    return lines


def _onnx_lines(result: Reevaluation) -> list[str]:
    exported = [m for m in result.models if m.onnx is not None]
    lines = []
    if exported:
        lines.append("\nONNX files for ONNX Runtime (uint8 NHWC images in, logits out); clean top-1 in ONNX Runtime "
                     "against PyTorch's on the same images:")
    for model in exported:
        onnx = model.onnx
        kind = "int8 QDQ" if onnx.kind == "qdq" else "float weights"
        lines.append(f"  {onnx.path} ({kind}, {int(onnx.bytes):,} bytes): {onnx.clean_accuracy:.2f}% "
                     f"(PyTorch {model.metric('clean_accuracy'):.2f}%)")
    return lines


def _latency_line(model: ModelResult, info: LatencyInfo) -> str | None:
    name = f"  {model.name} ({model.label})"
    latency = model.latency
    if latency is not None and isinstance(latency.error, str):
        return f"{name}: not measured: {latency.error}"
    if latency is None or _missing(latency.ms):
        return None
    text = f"{name}: {latency.ms:.3g} ms [{latency.low_ms:.3g}, {latency.high_ms:.3g}]"
    if model.role == "plan":
        low, high = float(latency.speedup_low), float(latency.speedup_high)
        text += f", {latency.speedup:.2f}x [{low:.2f}, {high:.2f}]: {speedup_verdict(low, high)}"
    if info.batch_size > 1 and not _missing(latency.batch_ms):
        text += f"; batch {info.batch_size}: {latency.batch_ms:.3g} ms"
        if model.role == "plan" and not _missing(latency.batch_speedup):
            text += f" ({latency.batch_speedup:.2f}x)"
    return text


def _latency_lines(result: Reevaluation) -> list[str]:
    info = result.latency
    if info is None:
        return []
    lines = [(f"\nLatency of the deployed form on this machine ({info.runtime_name}; {info.hardware}): batch 1, "
              f"median of {info.rounds} runs [interquartile range], each run alternating with the reference's; the "
              "speed-up is the median of the per-run ratios:")]
    lines += [line for m in result.models if m.role != "original" and (line := _latency_line(m, info)) is not None]
    return lines


def format_results(result: Reevaluation) -> str:
    """The plain-text report ``python -m moo_compress.evaluate`` prints for a re-evaluation
    (:func:`~moo_compress.search.reevaluate.reevaluate_run`): the images used, a table of absolute numbers
    (the reference and the original model first), then each plan's deltas against its reference with
    paired intervals, e.g. ``clean -0.4 [-0.9, +0.1] points``, then any exported files and latencies."""
    lines = [f"warning: {result.warning}"] if result.warning else []
    lines.append(result.fidelity)
    lines += [f"note: {n}" for n in result.notes]
    header = f"{'name':<28} {'label':<26} {'clean %':>8} {'mCA %':>7} {'mCE':>6} {'ratio':>7} {'cached':>6}"
    lines += ["", header, "-" * len(header)]
    lines += [_table_line(m) for m in result.models]
    lines += _comparison_lines(result)
    lines += _export_lines(result)
    lines += _onnx_lines(result)
    lines += _latency_lines(result)
    return "\n".join(lines)
