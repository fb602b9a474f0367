"""The compression engine: pruning -> clustering -> quantization, composed, with honest size accounting.

>>> from moo_compress.compress import ClusterConfig, CompressionPlan, PruneConfig, QuantizeConfig, compress
>>> plan = CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(8))
>>> small = compress(model, plan)                      # a new model; ``model`` is untouched
>>> size_report(small).compression_ratio               # dense fp32 bits / compressed bits

Modules: ``config`` (the frozen configs and the plan), ``targets`` (which layers), ``channels`` (where
a layer's output channels go: the batch norm after it, whether its filters can be removed from a
deployed graph), ``channel_ops`` (the one table of operations a removed channel may pass, in torch.fx
and ONNX spellings), ``prune``, ``cluster``, ``quantize``, ``recovery``, ``state`` (what a compressed
model carries), ``encoding`` and ``size`` (the storage model), ``api``.

Writing compressed models to files lives in :mod:`moo_compress.deploy` (packed files, ONNX). Its
``export_compressed``, ``load_compressed``, ``export_onnx`` and the other names of ``_DEPLOYED`` below
are still importable from here: they are loaded on first use, so ``compress`` never imports ``deploy``.
"""

from moo_compress.compress.api import ACTIVATION_CALIBRATION_IMAGES, compress
from moo_compress.compress.calibration import CalibrationData
from moo_compress.compress.channels import ChannelGraph, channel_graph
from moo_compress.compress.cluster import KMeansResult, kmeans_1d
from moo_compress.compress.config import (
    WEIGHT_BITS,
    ClusterConfig,
    CompressionPlan,
    LayerGroup,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
)
from moo_compress.compress.recovery import recalibrate_batchnorm
from moo_compress.compress.size import (
    SizeReport,
    TensorSize,
    compression_ratio,
    gzip_bytes,
    size_report,
    state_dict_bytes,
)
from moo_compress.compress.state import (
    CompressionState,
    LayerState,
    compression_state,
    is_compressed,
    model_fingerprint,
)
from moo_compress.compress.targets import LayerFilter, candidate_layers, is_compressible
from moo_compress.moved import lazy_names

__all__ = [
    "ACTIVATION_CALIBRATION_IMAGES",
    "WEIGHT_BITS",
    "CalibrationData",
    "ChannelGraph",
    "ClusterConfig",
    "CompressionPlan",
    "CompressionState",
    "ExportResult",
    "KMeansResult",
    "LayerFilter",
    "LayerGroup",
    "LayerState",
    "OnnxExport",
    "PruneConfig",
    "QuantizeConfig",
    "RecoveryConfig",
    "SizeReport",
    "TensorSize",
    "candidate_layers",
    "channel_graph",
    "compress",
    "compression_ratio",
    "compression_state",
    "export_compressed",
    "export_onnx",
    "gzip_bytes",
    "is_compressed",
    "model_fingerprint",
    "is_compressible",
    "kmeans_1d",
    "load_compressed",
    "pack_compressed",
    "recalibrate_batchnorm",
    "size_report",
    "state_dict_bytes",
    "unpack_compressed",
]

# Names that moved to moo_compress.deploy, loaded on first use (deploy imports compress, not the reverse).
_DEPLOYED = {
    "ExportResult": "moo_compress.deploy.export",
    "export_compressed": "moo_compress.deploy.export",
    "load_compressed": "moo_compress.deploy.export",
    "pack_compressed": "moo_compress.deploy.export",
    "unpack_compressed": "moo_compress.deploy.export",
    "OnnxExport": "moo_compress.deploy.onnx_export",
    "export_onnx": "moo_compress.deploy.onnx_export",
}

__getattr__, __dir__ = lazy_names(__name__, _DEPLOYED, globals())
