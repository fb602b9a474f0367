"""Contract tests over the whole model registry."""

from __future__ import annotations

import fnmatch

import pytest
import torch
from torch import nn

from moo_compress.errors import ConfigError, UnknownNameError
from moo_compress.models import create_model, list_models, model_defaults

# Parameter counts (10 classes) that the issue and the upstream model zoos state.
EXPECTED_PARAMS = {"vgg19": 20.57e6, "mobilenetv2": 2.24e6, "resnet20": 0.27e6, "resnet50": 23.5e6}


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_and_runs_forward(name: str) -> None:
    model = create_model(name, num_classes=10).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, *model_defaults(name).input_size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_layer_groups_cover_every_weight_layer_once(name: str) -> None:
    model = create_model(name)
    groups = model_defaults(name).layer_groups
    assert groups, f"{name} declares no layer groups"
    for layer, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            owners = [g for g, pats in groups.items() if any(fnmatch.fnmatchcase(layer, p) for p in pats)]
            assert len(owners) == 1, f"{name}.{layer} belongs to groups {owners}"


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_PARAMS.items()))
def test_parameter_counts_match_published_figures(name: str, expected: float) -> None:
    params = sum(p.numel() for p in create_model(name, num_classes=10).parameters())
    assert abs(params - expected) / expected < 0.01


def test_num_classes_sets_the_head() -> None:
    model = create_model("vgg19", num_classes=100)
    assert model.classifier[6].out_features == 100
    with pytest.raises(ConfigError):
        create_model("vgg19", num_classes=0)


def test_list_models_filters_by_glob_in_natural_order() -> None:
    assert list_models("vgg*") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert list_models("resnet1*") == ["resnet18", "resnet110"]
    assert {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "resnet34", "resnet50",
            "mobilenetv2"} <= set(list_models())


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_model("vgg91")
    message = str(info.value)
    assert "'vgg19'" in message and "valid:" in message and "mobilenetv2" in message


def test_state_dict_keys_follow_upstream_checkpoints() -> None:
    vgg = create_model("vgg19").state_dict()
    assert {"features.0.weight", "features.0.bias", "features.1.running_mean", "classifier.0.weight",
            "classifier.3.weight", "classifier.6.weight"} <= set(vgg)
    resnet = create_model("resnet20").state_dict()
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer3.2.bn2.bias",
            "linear.weight"} <= set(resnet)
    mobilenet = create_model("mobilenetv2").state_dict()
    assert {"features.0.0.weight", "features.1.conv.0.0.weight", "features.18.0.weight",
            "classifier.1.weight"} <= set(mobilenet)
    assert "fc.weight" in create_model("resnet50").state_dict()


def test_cifar_stems_keep_resolution() -> None:
    resnet = create_model("resnet18")
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert isinstance(resnet.maxpool, nn.Identity)
    mobilenet = create_model("mobilenetv2")
    assert mobilenet.features[0][0].stride == (1, 1)
