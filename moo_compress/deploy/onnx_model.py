"""Running an exported ``.onnx`` file (:func:`~moo_compress.deploy.export_onnx`) in ONNX Runtime on the CPU.

The graph takes uint8 NHWC images and normalises them itself, so :class:`OnnxModel` takes the same
arrays as :class:`~moo_compress.evaluation.Evaluator` and gives the same kind of answers.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from moo_compress.deploy.onnx_export import METADATA_PREFIX
from moo_compress.errors import ConfigError, DataFormatError
from moo_compress.evaluation.evaluator import check_images

__all__ = ["OnnxModel", "runtime_kernels"]


def _runtime():  # noqa: ANN202
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("running an ONNX file needs onnxruntime: pip install 'moo-compress[deploy]'") from None
    return onnxruntime


def _options(threads: int | None, optimized_path: str | None = None):  # noqa: ANN202
    ort = _runtime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ONNX Runtime's warnings about unused initializers are not ours to fix
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if optimized_path is not None:
        options.optimized_model_filepath = optimized_path
    return options


class OnnxModel:
    """An exported model in an ONNX Runtime CPU session: uint8 NHWC images in, logits out.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (None: ONNX Runtime's default, one per physical core).
        batch_size: Most images per run when predicting.

    Attributes:
        metadata: The file's ``metadata_props`` written by this package, without the ``moo_compress.`` prefix
            (``plan_label``, ``plan``, ``weights``, ``input``, ``mean``, ``std``, ``input_size``...).
        input_size: ``(3, height, width)`` of the images the graph takes, when the file says.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"no ONNX file at {self.path}")
        ort = _runtime()
        self.session = ort.InferenceSession(str(self.path), _options(threads), providers=["CPUExecutionProvider"])
        self.batch_size = batch_size
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k[len(METADATA_PREFIX):]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
        size = self.metadata.get("input_size")
        self.input_size: tuple[int, ...] | None = tuple(json.loads(size)) if size else None
        self._input = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Logits (float32, ``(N, classes)``) of one batch of uint8 ``(N, H, W, 3)`` images, in one run."""
        return self.session.run(None, {self._input: np.ascontiguousarray(images)})[0]

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits of every image, in equal batches of at most ``batch_size``."""
        check_images(images)
        if self.input_size is not None and tuple(images.shape[1:3]) != tuple(self.input_size[1:]):
            raise DataFormatError(f"the model takes {self.input_size[1]}x{self.input_size[2]} images, got "
                                  f"{images.shape[1]}x{images.shape[2]}; resize them first")
        out = []
        start = 0
        while start < len(images):
            left = len(images) - start
            stop = start + math.ceil(left / math.ceil(left / self.batch_size))
            out.append(self(images[start:stop]))
            start = stop
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predicted class index of every image (int64)."""
        return self.logits(images).argmax(1).astype(np.int64)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """Top-1 accuracy in [0, 1] on ``images``."""
        check_images(images, labels)
        if len(images) == 0:
            raise DataFormatError("cannot compute accuracy on zero images")
        return float(np.mean(self.predict(images) == np.asarray(labels)))


def runtime_kernels(path: str | os.PathLike[str]) -> Counter[str]:
    """Operator counts of the graph ONNX Runtime actually runs for ``path`` on the CPU (after its
    graph optimisations: e.g. ``QLinearConv`` where QDQ layers became int8 kernels)."""
    import onnx

    ort = _runtime()
    with tempfile.TemporaryDirectory() as folder:
        optimized = os.path.join(folder, "optimized.onnx")
        ort.InferenceSession(str(path), _options(1, optimized), providers=["CPUExecutionProvider"])
        return Counter(node.op_type for node in onnx.load(optimized).graph.node)
