"""The CIFAR model zoo: a registry of architectures, their defaults and pretrained weights.

>>> from moo_compress.models import create_model, list_models
>>> model = create_model("resnet20", num_classes=10)
>>> list_models("vgg*")
['vgg11', 'vgg13', 'vgg16', 'vgg19']
"""

from moo_compress.models import cifar_resnet, mobilenetv2, resnet, vgg  # noqa: F401  (registers)
from moo_compress.models.registry import (
    ModelDefaults,
    PretrainedSource,
    create_model,
    list_models,
    model_defaults,
    register_model,
)
from moo_compress.models.weights import (
    Checkpoint,
    PretrainedModel,
    checkpoint_sha256,
    find_weights,
    load_pretrained,
    load_state_dict_strict,
    materialize_source,
    read_checkpoint,
    resolve_weights,
    save_checkpoint,
)

__all__ = [
    "Checkpoint",
    "ModelDefaults",
    "PretrainedModel",
    "PretrainedSource",
    "checkpoint_sha256",
    "create_model",
    "find_weights",
    "list_models",
    "load_pretrained",
    "load_state_dict_strict",
    "materialize_source",
    "model_defaults",
    "read_checkpoint",
    "register_model",
    "resolve_weights",
    "save_checkpoint",
]
