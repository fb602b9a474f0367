"""``export_onnx``: a compressed model as an ONNX file that ONNX Runtime runs on the CPU.

What the file holds:

* **Input**: uint8 images ``images`` of shape ``(N, H, W, 3)`` (RGB, 0-255, the layout the package's
  datasets and :class:`~moo_compress.evaluation.Evaluator` use) at the model's input size, any batch
  size. The graph itself converts them to float NCHW and normalises them with the model's mean and
  std, so a deployment cannot forget or mistype the normalisation; resizing is left to the caller.
  Output: ``logits`` ``(N, classes)``, float32.
* **Weights**: ONNX has no 2-7-bit types and no codebook operator, so a weight-only plan (pruning,
  clustering, quantization of weights) is stored with its **dequantized float32 weights**: the values
  the compressed PyTorch model computes with, not the packed bits (:func:`export_compressed` writes
  those). Batch norms are folded into the convolutions.
* **Activation quantization** (``QuantizeConfig(activation_bits=...)``, 2-8 bits): a QDQ model
  (:mod:`moo_compress.deploy.qdq`) that keeps the plan's own weight codes and scales (int8, or
  uint8 for affine grids) and input grids, plus 8-bit grids on the layer outputs that no quantized input
  rounds, observed on the calibration images, so that ONNX Runtime runs the layers as int8 kernels.
  16-bit activations stay float operations that round as the PyTorch model does.
* **Structured pruning**: filters left all-zero become physically smaller layers where that is exact
  (:func:`~moo_compress.deploy.graph.remove_zero_filters`; never across a residual addition).
  :func:`compress` removes a pruned filter's whole channel (its bias and the following batch norm's
  affine parameters are zeroed), so its output is exactly zero and it goes even before a padded
  convolution; a ``PruneConfig(structured=True, removable_only=True)`` plan prunes only the layers
  whose filters can go (:mod:`moo_compress.compress.channels`), so every pruned filter leaves the graph.
* **Metadata** (``metadata_props``, keys ``moo_compress.*``): the plan's label and JSON, how weights are
  stored, the input layout, mean, std and input size, the architecture when given.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from moo_compress import __version__
from moo_compress.compress.api import ACTIVATION_CALIBRATION_IMAGES, compress
from moo_compress.compress.calibration import CalibrationData
from moo_compress.compress.config import CompressionPlan
from moo_compress.compress.quantize import ActivationQuant
from moo_compress.compress.state import STATE_ATTRIBUTE, CompressionState, LayerState, is_compressed
from moo_compress.errors import ConfigError
from moo_compress.fileio import atomic_open

__all__ = ["OnnxExport", "export_onnx", "INPUT_NAME", "OUTPUT_NAME", "METADATA_PREFIX"]

_log = logging.getLogger(__name__)

#: Name of the graph's input (uint8 NHWC images) and output (logits).
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
#: Prefix of the keys this package writes into ``metadata_props``.
METADATA_PREFIX = "moo_compress."
#: ONNX opset of the exported graphs (QuantizeLinear/DequantizeLinear per axis need 13).
_OPSET = 20
_PREFIX = "model."  # parameter names inside the exported wrapper


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: The ``.onnx`` file.
        bytes: Its size.
        kind: ``"float"`` (every weight a dequantized float) or ``"qdq"`` (int8 QDQ layers).
        quantized_layers: Module names of the layers stored as QDQ.
        removed_filters: All-zero filters removed from the graph.
        metadata: The ``metadata_props`` written.
    """

    path: Path
    bytes: int
    kind: str
    quantized_layers: tuple[str, ...]
    removed_filters: int
    metadata: dict[str, str]


class _ImageInput(nn.Module):
    """uint8 NHWC images -> the normalised float NCHW batch the model expects -> the model."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        # (x / 255 - mean) / std == x * scale + shift, as the Evaluator and CalibrationData compute it
        self.register_buffer("scale", torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).contiguous().float()  # contiguous: plain NCHW, so flatten stays a reshape
        return self.model(x * self.scale + self.shift)


def _three(name: str, value: object, *, positive: bool = False) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or (positive and min(out) <= 0):
        raise ConfigError(f"export_onnx: {name} must be three numbers{' > 0' if positive else ''}, got {value!r}; "
                          f"pass the model's normalisation (PretrainedModel.{name})")
    return out  # type: ignore[return-value]


def _input_size(value: object) -> tuple[int, int, int]:
    try:
        size = tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or size[0] != 3 or min(size) < 1:
        raise ConfigError(f"export_onnx: input_size must be (3, height, width) of RGB images, got {value!r}; "
                          "pass the model's (PretrainedModel.input_size)")
    return size  # type: ignore[return-value]


def _compressed(model: nn.Module, plan: CompressionPlan | None, calibration: CalibrationData | None) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"export_onnx needs a torch.nn.Module, got {type(model).__name__}")
    if plan is not None and not isinstance(plan, CompressionPlan):
        raise ConfigError(f"export_onnx: plan must be a CompressionPlan or None, got {type(plan).__name__}")
    if is_compressed(model):
        own = getattr(model, STATE_ATTRIBUTE).plan
        if plan is not None and plan.key() != own.key():
            raise ConfigError(f"export_onnx: the model was compressed with {own.label()!r}, not with the plan given "
                              f"({plan.label()!r}); pass plan=None or the original model")
        return model
    if plan is None or plan.is_identity:
        return model
    return compress(model, plan, calibration)


def _layer_codes(layer: LayerState) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int] | None:
    """(codes, scale per row, zero point per row, qmin, qmax) of a layer on a grid of at most 8 bits."""
    grid = layer.quant
    if grid is None or grid.bits > 8:
        return None
    if layer.codebook is not None:
        zero = int(grid.zero_point[0])
        table = np.append(layer.codebook_codes.astype(np.int32), np.int32(zero))  # index -1 -> the zero code
        codes = table[layer.indices]
    else:
        codes = layer.codes.astype(np.int32)
    rows = layer.shape[0]
    scale = np.broadcast_to(grid.scale, (rows,)).astype(np.float32)
    zero_point = np.broadcast_to(grid.zero_point, (rows,)).astype(np.int32)
    return codes, scale, zero_point, grid.qmin, grid.qmax


def _qdq_layers(state: CompressionState | None) -> dict[str, ActivationQuant]:
    """Layers whose input the plan rounds on a grid of at most 8 bits (the ones stored as QDQ)."""
    if state is None:
        return {}
    return {name: grid for name, grid in state.activations.items() if grid.bits <= 8}


def _float_copy(model: nn.Module, qdq: dict[str, ActivationQuant]) -> nn.Module:
    """A CPU eval copy without the compression state and without the input rounding of ``qdq`` layers
    (the QDQ nodes take its place; 16-bit rounding stays a hook and is exported as float operations)."""
    state = getattr(model, STATE_ATTRIBUTE, None)
    memo = {id(state): None} if state is not None else {}
    plain = copy.deepcopy(model, memo).cpu().eval()
    if hasattr(plain, STATE_ATTRIBUTE):
        delattr(plain, STATE_ATTRIBUTE)
    for name, module in plain.named_modules():
        if name in qdq:
            for key, hook in list(module._forward_pre_hooks.items()):
                if isinstance(hook, ActivationQuant):
                    del module._forward_pre_hooks[key]
    return plain


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """torch.onnx prints its progress and warns about things that do not concern a CNN; keep it out of the log."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _trace(model: nn.Module, mean: tuple[float, float, float], std: tuple[float, float, float],
           size: tuple[int, int, int]):  # noqa: ANN202 (onnx is imported lazily)
    wrapper = _ImageInput(model, mean, std).eval()
    example = torch.zeros((2, size[1], size[2], 3), dtype=torch.uint8)
    with _quiet_export(), torch.no_grad():
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}}, opset_version=_OPSET, optimize=True,
            verbose=False, external_data=False,
        )
    return program.model_proto


def _fake_quantize(values: np.ndarray, grid: ActivationQuant) -> np.ndarray:
    """``values`` rounded as QuantizeLinear -> DequantizeLinear round them (float32, half to even)."""
    scale = np.float32(grid.scale)
    codes = np.clip(np.rint(values.astype(np.float32) / scale) + grid.zero_point, 0, 2**grid.bits - 1)
    return ((codes - grid.zero_point) * scale).astype(np.float64)


def _observe(model, tensors: list[str], calibration: CalibrationData) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    """Min and max of each of ``tensors`` over the first calibration images, run by ONNX Runtime."""
    import onnx
    import onnxruntime as ort

    probe = copy.deepcopy(model)
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    n = min(len(calibration), ACTIVATION_CALIBRATION_IMAGES)
    calibration.check_balance(n, purpose="ONNX output calibration")
    ranges: dict[str, list[float]] = {}
    for start in range(0, n, 128):
        batch = np.ascontiguousarray(calibration.images[start:min(start + 128, n)])
        outputs = session.run(tensors, {INPUT_NAME: batch})
        for name, value in zip(tensors, outputs, strict=True):
            lo, hi = float(value.min()), float(value.max())
            old = ranges.get(name)
            ranges[name] = [lo, hi] if old is None else [min(old[0], lo), max(old[1], hi)]
    return {name: (lo, hi) for name, (lo, hi) in ranges.items()}


def _require_onnx() -> None:
    for package in ("onnx", "onnxruntime", "onnxscript"):  # onnxscript: torch.onnx's exporter needs it
        try:
            importlib.import_module(package)
        except ImportError:
            raise ConfigError(f"export_onnx needs onnx, onnxruntime and onnxscript; {package} is missing: "
                              "pip install 'moo-compress[deploy]'") from None


def _qdq_layer_list(state: CompressionState, qdq: dict[str, ActivationQuant], kept) -> list:  # noqa: ANN001
    """The :class:`~moo_compress.deploy.qdq.QdqLayer` of every ``qdq`` layer, its codes cut to the
    channels the graph kept."""
    from moo_compress.deploy.qdq import QdqLayer, WeightCodes

    layers = []
    for name, grid in qdq.items():
        weight = f"{_PREFIX}{name}.weight"
        found = _layer_codes(state.layers[name])
        codes = None
        if found is not None:
            values, scale, zero_point, qmin, qmax = found
            rows, columns = kept.rows.get(weight), kept.columns.get(weight)
            if rows is not None:
                values, scale, zero_point = values[rows], scale[rows], zero_point[rows]
            if columns is not None:
                values = values[:, columns]
            codes = WeightCodes(values, scale, zero_point, qmin, qmax)
        layers.append(QdqLayer(name, weight, grid, codes))
    return layers


def _build(compressed: nn.Module, state: CompressionState | None, qdq: dict[str, ActivationQuant], *,
           mean: tuple[float, float, float], std: tuple[float, float, float], size: tuple[int, int, int],
           calibration: CalibrationData | None):  # noqa: ANN202
    """The graph: traced float model -> zero filters removed -> QDQ layers and their int8 surroundings."""
    from moo_compress.deploy.graph import remove_zero_filters
    from moo_compress.deploy.qdq import (
        inherited_grids,
        insert_qdq,
        planned_tensors,
        round_tensors,
        tensors_to_round,
    )

    try:
        graph = _trace(_float_copy(compressed, qdq), mean, std, size)
    except Exception as exc:  # torch.export raises many types for code it cannot trace
        raise ConfigError(f"torch.onnx.export could not export {type(compressed).__name__}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    inputs = {f"{_PREFIX}{name}.weight": grid for name, grid in qdq.items()}

    def seen_by(weight: str, values: np.ndarray) -> np.ndarray:  # a QDQ layer sees a removed constant rounded
        grid = inputs.get(weight)
        return values if grid is None else _fake_quantize(values, grid)

    kept = remove_zero_filters(graph, input_value=seen_by)
    layers = _qdq_layer_list(state, qdq, kept) if qdq else []  # type: ignore[arg-type]
    if layers:
        needed = tensors_to_round(graph, layers)
        insert_qdq(graph, layers)
        planned = planned_tensors(graph)
        grids = inherited_grids(graph, [t for t in needed if t not in planned])
        observe = [t for t in needed if t not in planned and t not in grids]
        ranges = _observe(graph, observe, calibration) if observe else {}  # type: ignore[arg-type]
        grids.update({t: ActivationQuant.from_range(*ranges[t], 8) for t in observe})
        round_tensors(graph, needed, grids)
    return graph, kept, layers


def export_onnx(
    model: nn.Module,
    plan: CompressionPlan | None,
    path: str | os.PathLike[str],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    input_size: Sequence[int] = (3, 32, 32),
    calibration: CalibrationData | None = None,
    arch: str | None = None,
) -> OnnxExport:
    """Writes a (compressed) model as an ONNX file for ONNX Runtime's CPU provider (see the module docstring).

    The graph takes **uint8 NHWC images** ``(N, H, W, 3)`` at ``input_size`` and normalises them itself
    with ``mean`` and ``std``; it returns float logits. Weight-only plans carry their **dequantized
    float weights** (ONNX has no 2-7-bit types or codebooks); plans that quantize layer inputs
    (``activation_bits`` of 2-8) become a QDQ int8 graph on the plan's own weight and input grids.

    Args:
        model: The uncompressed model (compressed here with ``plan``) or a model returned by
            :func:`compress` / :func:`load_compressed` (then ``plan`` is None or that model's plan).
        plan: The plan, or None for a compressed model's own plan (or no compression).
        path: The file to write (folders are created; written atomically).
        mean: Per-channel normalisation mean on [0, 1] pixels (``PretrainedModel.mean``).
        std: Per-channel normalisation std (``PretrainedModel.std``).
        input_size: ``(3, height, width)`` of the images the graph takes.
        calibration: Training images: needed to compress with a plan that asks for them, and for the
            output grids of an activation-quantized plan (the first 512 images are read).
        arch: Architecture name, stored in the metadata.

    Returns:
        What was written.

    Raises:
        ConfigError: for invalid arguments, a plan other than the compressed model's, missing
            calibration images, calibration images of another size than ``input_size``, a model
            torch.onnx cannot export, or missing onnx packages.
    """
    _require_onnx()
    mean, std = _three("mean", mean), _three("std", std, positive=True)
    size = _input_size(input_size)
    if calibration is not None and not isinstance(calibration, CalibrationData):
        raise ConfigError(f"export_onnx: calibration must be a CalibrationData, got {type(calibration).__name__}")
    compressed = _compressed(model, plan, calibration)
    state: CompressionState | None = getattr(compressed, STATE_ATTRIBUTE, None)
    qdq = _qdq_layers(state)
    if qdq:
        if calibration is None:
            raise ConfigError("export_onnx: the plan quantizes activations, whose int8 graph needs calibration images "
                              "for its output grids: pass calibration=CalibrationData.from_dataset(train, ...)")
        if calibration.images.shape[1:3] != size[1:]:
            raise ConfigError(f"export_onnx: calibration images are {calibration.images.shape[1]}x"
                              f"{calibration.images.shape[2]}, the graph takes {size[1]}x{size[2]}; resize them to "
                              "the model's input size")
    graph, kept, layers = _build(compressed, state, qdq, mean=mean, std=std, size=size, calibration=calibration)
    plan_used = state.plan if state is not None else CompressionPlan()
    metadata = _metadata(plan_used, layers, mean=mean, std=std, size=size, removed=kept.removed, arch=arch)
    _write(graph, path, metadata, f"moo_compress export of {arch or 'a model'} ({plan_used.label()}): uint8 NHWC "
           f"images in, logits out; weights: {metadata[METADATA_PREFIX + 'weights']}")
    if kept.kept_nonzero:
        _log.info("kept %d all-zero filters whose constant output meets zero padding", kept.kept_nonzero)
    size_bytes = Path(path).stat().st_size
    return OnnxExport(Path(path), size_bytes, "qdq" if layers else "float", tuple(layer.name for layer in layers),
                      kept.removed, metadata)


def _metadata(plan: CompressionPlan, layers: list, *, mean: tuple[float, float, float],  # noqa: ANN001
              std: tuple[float, float, float], size: tuple[int, int, int], removed: int,
              arch: str | None) -> dict[str, str]:
    if layers:
        names = [layer.name for layer in layers]
        weights = (f"int8 QDQ on the plan's own grids for {len(names)} layer(s) ({', '.join(names)}); "
                   "every other weight dequantized to float32")
    else:
        weights = "dequantized to float32 (ONNX has no 2-7-bit types or codebooks)"
    metadata = {
        "plan_label": plan.label(),
        "plan": plan.to_json(),
        "weights": weights,
        "input": f"uint8 images (N, {size[1]}, {size[2]}, 3), RGB 0-255; normalised inside the graph",
        "mean": json.dumps(list(mean)),
        "std": json.dumps(list(std)),
        "input_size": json.dumps(list(size)),
        "removed_filters": str(removed),
        "version": __version__,
    }
    if arch:
        metadata["arch"] = str(arch)
    return {f"{METADATA_PREFIX}{k}": v for k, v in metadata.items()}


def _write(graph, path: str | os.PathLike[str], metadata: dict[str, str], doc: str) -> None:  # noqa: ANN001
    import onnx

    onnx.helper.set_model_props(graph, {**{p.key: p.value for p in graph.metadata_props}, **metadata})
    graph.doc_string = doc
    graph.producer_name = "moo_compress"
    graph.producer_version = __version__
    onnx.checker.check_model(graph)
    with atomic_open(path, "wb") as handle:
        handle.write(graph.SerializeToString())
