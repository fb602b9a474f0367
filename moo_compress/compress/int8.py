"""A real int8 CPU execution path for 8-bit plans, and latency measurement.

Built on ``torch.ao.quantization``'s FX graph mode (``prepare_fx``/``convert_fx``), the one int8 path
that still works in torch 2.14 without extra packages: PT2E moved out of torch into torchao
(``torch.ao.quantization.quantize_pt2e`` is gone), and FX mode, although deprecated, runs on the x86
(FBGEMM/oneDNN) quantized kernels. Torch's deprecation warnings are silenced here.

Layers whose plan quantizes weights to 8 bits become quantized int8 kernels with per-channel
symmetric int8 weights (codes in [-127, 127], the plan's grid) and uint8 activations calibrated by
histogram observers; every other layer stays float. Conv-BN(-ReLU) sequences are fused first, which
rescales each output channel of the weight: for per-channel symmetric plans the int8 codes are
unchanged (up to float rounding of the scale), while clustered layers (one grid per codebook) are
re-quantized per channel after folding, keeping at most 255 levels per channel but not exactly their
k values. The result runs on the CPU only.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from moo_compress.compress.calibration import CalibrationData
from moo_compress.compress.state import STATE_ATTRIBUTE, compression_state
from moo_compress.errors import ConfigError

__all__ = ["to_int8", "measure_latency", "compare_latency"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def to_int8(
    model: nn.Module,
    calibration: CalibrationData,
    *,
    n_images: int = 256,
    batch_size: int = 64,
    backend: str = "x86",
) -> nn.Module:
    """Converts a compressed model with 8-bit layers into an int8 CPU model (see the module docstring).

    Args:
        model: A model returned by ``compress`` whose plan quantizes some layers to 8 bits.
        calibration: Images for the activation observers.
        n_images: Calibration images used (the first ones).
        batch_size: Calibration batch size.
        backend: Quantized engine (``x86``, ``fbgemm``, ``qnnpack``, ``onednn``).

    Raises:
        ConfigError: if no layer is quantized to 8 bits, or the backend is not available.

    Note:
        Sets ``torch.backends.quantized.engine`` to ``backend`` (process-wide): the int8 model's
        packed weights run on that engine.
    """
    from torch.ao.quantization import HistogramObserver, PerChannelMinMaxObserver, QConfig, QConfigMapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    state = compression_state(model)
    int8_layers = [n for n, s in state.layers.items() if s.quant is not None and s.quant.bits == 8]
    if not int8_layers:
        raise ConfigError("no layer of this model is quantized to 8 bits; use QuantizeConfig(8) for the int8 path")
    if backend not in torch.backends.quantized.supported_engines:
        raise ConfigError(
            f"quantized engine {backend!r} is not available here; use one of "
            f"{', '.join(torch.backends.quantized.supported_engines)}"
        )
    torch.backends.quantized.engine = backend
    qconfig = QConfig(
        activation=HistogramObserver.with_args(quant_min=0, quant_max=127 if backend in ("x86", "fbgemm") else 255),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127
        ),
    )
    mapping = QConfigMapping()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            mapping.set_module_name(name, qconfig if name in int8_layers else None)
    float_model = copy.deepcopy(model).cpu().eval()
    for module in float_model.modules():  # the int8 graph quantizes activations itself
        module._forward_pre_hooks.clear()
    if hasattr(float_model, STATE_ATTRIBUTE):
        delattr(float_model, STATE_ATTRIBUTE)
    example = calibration.tensor(slice(0, min(2, len(calibration))))
    with _quiet(), torch.no_grad():
        prepared = prepare_fx(float_model, mapping, example_inputs=(example,))
        for x in calibration.batches(batch_size, limit=n_images):
            prepared(x)
        return convert_fx(prepared)


def measure_latency(model: nn.Module, inputs: torch.Tensor, *, warmup: int = 2, repeats: int = 10) -> float:
    """Median seconds of one ``model(inputs)`` call under ``torch.inference_mode`` (after warm-up runs)."""
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(inputs)
        for _ in range(repeats):
            start = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_latency(
    models: dict[str, nn.Module], inputs: torch.Tensor, *, rounds: int = 15, warmup: int = 2
) -> dict[str, tuple[float, float]]:
    """Times several models in alternation, so that load from other processes hits them alike.

    Returns:
        Name -> (median seconds per call, median over rounds of the first model's time divided by
        this model's time, i.e. its speed-up over the first model).
    """
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(warmup):
            for model in models.values():
                model(inputs)
        for _ in range(rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model(inputs)
                times[name].append(time.perf_counter() - start)
    first = times[next(iter(models))]
    return {
        name: (statistics.median(t), statistics.median(a / b for a, b in zip(first, t, strict=True)))
        for name, t in times.items()
    }
