import numpy as np
import pytest
import torch
from torch import nn

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    LayerGroup,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
    compress,
    compression_ratio,
    compression_state,
    is_compressed,
    size_report,
)
from moo_compress.errors import ConfigError
from moo_compress.models import create_model, list_models, model_defaults

from .conftest import make_tiny, weight

LAYERS = ("conv1", "conv2", "fc1", "fc2")
FULL = CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(4))


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_compress_leaves_its_input_untouched(tiny, calibration):
    before = _snapshot(tiny)
    plan = CompressionPlan(
        prune=PruneConfig(0.5),
        cluster=ClusterConfig(8),
        quantize=QuantizeConfig(8, activation_bits=8),
        recovery=RecoveryConfig(bn_images=32, finetune_steps=2, finetune_batch_size=8),
    )
    small = compress(tiny, plan, calibration)
    after = tiny.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not is_compressed(tiny) and is_compressed(small)
    assert all(not m._forward_pre_hooks for m in tiny.modules())
    assert small is not tiny and not tiny.training


def test_compress_is_deterministic(tiny, calibration):
    plan = CompressionPlan(
        prune=PruneConfig(0.5),
        cluster=ClusterConfig(8),
        quantize=QuantizeConfig(6),
        recovery=RecoveryConfig(bn_images=32, finetune_steps=3, finetune_batch_size=8),
        seed=4,
    )
    a, b = compress(tiny, plan, calibration), compress(tiny, plan, calibration)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_all_properties_hold_in_combination(tiny):
    small = compress(tiny, FULL)
    pruned = compress(tiny, CompressionPlan(prune=PruneConfig(0.5)))
    total = sum(weight(tiny, n).size for n in LAYERS)
    zeros = sum(np.count_nonzero(weight(small, n) == 0) for n in LAYERS)
    assert abs(zeros / total - 0.5) <= 0.005
    for n in LAYERS:
        w = weight(small, n)
        assert np.all(w[weight(pruned, n) == 0] == 0)  # zeros stay zero
        assert np.unique(w[w != 0]).size <= 16  # <= k distinct non-zero values
        assert max(np.unique(r).size for r in w.reshape(w.shape[0], -1)) <= 2**4  # <= 2^b levels per channel
        layer = compression_state(small).layers[n]
        assert set(np.unique(w[w != 0])) <= set(layer.codebook)  # values come from the quantized codebook


def test_forward_uses_the_compressed_weights(tiny, inputs):
    small = compress(tiny, FULL)
    with torch.no_grad():
        out = small(inputs)
        assert not torch.allclose(out, tiny(inputs))
        for name, module in small.named_modules():
            if name in LAYERS:
                expected = torch.from_numpy(compression_state(small).layers[name].weight())
                assert torch.equal(module.weight, expected)


def test_per_group_plan_applies_each_groups_settings(tiny):
    plan = CompressionPlan(
        groups=(
            LayerGroup("convs", ("conv*",), prune=PruneConfig(0.8, scope="layer")),
            LayerGroup("head", ("fc2",), quantize=QuantizeConfig(2)),
        ),
        cluster=ClusterConfig(4),  # the top level covers the remaining layer (fc1)
    )
    small = compress(tiny, plan)
    state = compression_state(small).layers
    assert state["conv1"].group == "convs" and state["fc2"].group == "head" and state["fc1"].group is None
    for n in ("conv1", "conv2"):
        assert abs(np.mean(weight(small, n) == 0) - 0.8) < 0.01
        assert state[n].cluster is None and state[n].quantize is None
    assert max(np.unique(row).size for row in weight(small, "fc2")) <= 3  # 2-bit symmetric, per channel
    assert np.unique(weight(small, "fc1")).size <= 4 and state["fc1"].prune is None


def test_plans_from_model_layer_groups():
    model = create_model("resnet20").eval()
    groups = model_defaults("resnet20").layer_groups
    plan = CompressionPlan.for_layer_groups(
        groups,
        {
            "layer1": {"prune": PruneConfig(0.3)},
            "layer3": {"cluster": ClusterConfig(8), "quantize": QuantizeConfig(4)},
        },
    )
    small = compress(model, plan)
    layers = compression_state(small).layers
    assert all(n.startswith(("layer1", "layer3")) for n in layers)
    assert {s.group for s in layers.values()} == {"layer1", "layer3"}
    assert compression_ratio(small) > 1.5


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (CompressionPlan(groups=(LayerGroup("g", ("nothing*",), prune=PruneConfig(0.5)),)), "match no layer"),
        (
            CompressionPlan(
                groups=(
                    LayerGroup("a", ("conv*",), prune=PruneConfig(0.5)),
                    LayerGroup("b", ("conv2",), prune=PruneConfig(0.5)),
                )
            ),
            "make the groups' patterns disjoint",
        ),
        (CompressionPlan(prune=PruneConfig(0.5), exclude=("fc9",)), "exclude pattern 'fc9' matches no layer"),
        (CompressionPlan(recovery=RecoveryConfig(bn_images=8)), "needs calibration images"),
        (CompressionPlan(recovery=RecoveryConfig(finetune_steps=8)), "needs calibration images"),
    ],
)
def test_plans_that_do_not_fit_raise(tiny, plan, message):
    with pytest.raises(ConfigError, match=message):
        compress(tiny, plan)


def test_bad_arguments_raise(tiny, calibration):
    with pytest.raises(ConfigError, match="needs a CompressionPlan"):
        compress(tiny, {"prune": {"sparsity": 0.5}})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="already compressed"):
        compress(compress(tiny, FULL), FULL)
    with pytest.raises(ConfigError, match="holds 64 images"):
        compress(tiny, CompressionPlan(recovery=RecoveryConfig(bn_images=100)), calibration)
    with pytest.raises(ConfigError, match="calibration must be a CalibrationData"):
        compress(tiny, FULL, calibration=np.zeros((4, 8, 8, 3), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no layer the filter selects"):
        compress(nn.Sequential(nn.ReLU()), FULL)
    calibration_unlabelled = type(calibration)(calibration.images, calibration.mean, calibration.std)
    with pytest.raises(ConfigError, match="labelled calibration"):
        compress(
            tiny,
            CompressionPlan(prune=PruneConfig(0.5), recovery=RecoveryConfig(finetune_steps=1)),
            calibration_unlabelled,
        )


def test_a_custom_filter_selects_layers(tiny):
    small = compress(tiny, FULL, filter_fn=lambda name, m: isinstance(m, nn.Linear))
    assert set(compression_state(small).layers) == {"fc1", "fc2"}
    np.testing.assert_array_equal(weight(small, "conv1"), weight(tiny, "conv1"))


def test_identity_plan_copies_the_model(tiny, inputs):
    same = compress(tiny, CompressionPlan())
    with torch.no_grad():
        assert torch.equal(same(inputs), tiny(inputs))
    assert size_report(same).compression_ratio == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compress_on_cuda_matches_cpu(inputs):
    model = make_tiny()
    cpu = compress(model, FULL)
    gpu = compress(model.cuda(), FULL)
    assert next(gpu.parameters()).is_cuda
    for k, v in cpu.state_dict().items():
        assert torch.equal(v, gpu.state_dict()[k].cpu()), k


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.slow
def test_every_registered_architecture_compresses(arch):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10).eval()
    plan = CompressionPlan(
        prune=PruneConfig(0.5), cluster=ClusterConfig(4), quantize=QuantizeConfig(8), exclude_first_conv=True
    )
    small = compress(model, plan)
    with torch.no_grad():
        out = small(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert size_report(small).compression_ratio > 5


def test_a_plan_that_needs_no_calibration_compresses_without_it(tiny):
    plan = CompressionPlan(prune=PruneConfig(0.5), quantize=QuantizeConfig(4),
                           recovery=RecoveryConfig(finetune_lr=1e-3))
    assert not plan.needs_calibration
    compress(tiny, plan)  # no ConfigError: the recovery settings alone read no images
    both = CompressionPlan(quantize=QuantizeConfig(8, activation_bits=8), recovery=RecoveryConfig(bn_images=8))
    assert both.needs_calibration
    with pytest.raises(ConfigError, match=r"re-estimation \(recovery.bn_images=8\), activation quantization"):
        compress(tiny, both)
