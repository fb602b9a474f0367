"""Channel analysis (``channels.channel_graph``), whole-channel removal by structured pruning, and
``PruneConfig(removable_only=True)``, on tiny models made here."""

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from moo_compress.compress import (
    CalibrationData,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
    compress,
    compression_state,
)
from moo_compress.compress.channels import channel_graph
from moo_compress.errors import ConfigError


def _randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms whose pruned channels would output clearly non-zero constants."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) + 0.2)
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


class TinyVGG(nn.Module):
    """A VGG-like Sequential: conv-bn-relu-pool, conv-bn-relu6, pool, flatten, dropout, linear-relu-linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Residual(nn.Module):
    """stem conv-bn-relu, one block (conv-bn-relu, conv-bn, + identity, relu), pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv1, self.bn1 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        out = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(out)) + x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Depthwise(nn.Module):
    """conv-bn-relu -> depthwise conv -> pointwise conv -> relu -> pool -> view(N, -1) -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.expand, self.bn = nn.Conv2d(3, 8, 1, bias=False), nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(8, 12, 1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.expand(x)))
        x = self.pointwise(self.depthwise(x)).relu()
        x = F.adaptive_max_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


class Branches(nn.Module):
    """Two convs concatenated, a conv after the concatenation, a GELU and a sigmoid gate."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
        self.merge = nn.Conv2d(8, 8, 3, padding=1)
        self.gelu_conv = nn.Conv2d(8, 8, 1)
        self.gate = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        x = F.relu(self.merge(x))
        x = F.gelu(self.gelu_conv(x))  # GELU(0) = 0, but the ONNX export cannot remove channels across it
        x = x * torch.sigmoid(self.gate(x))
        return self.fc(torch.flatten(F.avg_pool2d(x, 16), 1))


class Heads(nn.Module):
    """A batch norm without affine parameters, a reflect-padded conv, a Linear -> BatchNorm1d -> Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, affine=False)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.fc1, self.bn1d, self.fc2 = nn.Linear(8 * 16 * 16, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b(F.relu(self.norm(self.a(x))))
        x = F.relu(self.c(F.relu(x)))
        return self.fc2(F.relu(self.bn1d(self.fc1(x.flatten(1)))))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        if x.mean() > 0:  # depends on the values
            x = F.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


# model -> (removable layers, layer -> the batch norm that alone reads it), written out by hand
EXPECTED = {
    TinyVGG: ({"features.0", "features.4", "classifier.2"}, {"features.0": "features.1", "features.4": "features.5"}),
    Residual: ({"conv1"}, {"stem": "bn0", "conv1": "bn1", "conv2": "bn2"}),
    Depthwise: ({"pointwise"}, {"expand": "bn"}),
    Branches: ({"merge"}, {}),
    # a: its norm maps a zero channel to a constant; b: feeds a reflect-padded conv
    Heads: ({"c", "fc1"}, {"fc1": "bn1d"}),
}


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_channel_graph_finds_removable_layers_and_their_batch_norms(cls):
    removable, batchnorms = EXPECTED[cls]
    graph = channel_graph(cls())
    assert graph.untraceable is None
    assert graph.removable == removable
    assert dict(graph.batchnorms) == batchnorms


def test_an_untraceable_model_gives_an_empty_analysis():
    graph = channel_graph(Untraceable())
    assert graph.untraceable is not None and "TraceError" in graph.untraceable
    assert graph.removable == frozenset() and dict(graph.batchnorms) == {}


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 4, 4, 3)).astype(np.float32)
    return np.clip(coarse.repeat(4, 1).repeat(4, 2) + rng.normal(0, 20, (n, 16, 16, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def calib() -> CalibrationData:
    rng = np.random.default_rng(0)
    return CalibrationData(_images(64, seed=1), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), labels=rng.integers(0, 4, 64))


def _pruned_filters(model: nn.Module, name: str) -> np.ndarray:
    """Indices of the all-zero filters of a layer, read from the compressed weights themselves."""
    w = dict(model.named_modules())[name].weight.detach().numpy()
    return np.flatnonzero(~w.reshape(w.shape[0], -1).any(axis=1))


def _outputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of modules ``names`` on ``x`` (eval mode)."""
    modules, seen = dict(model.named_modules()), {}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o)) for n in names]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return seen


RECOVERIES = {
    "none": RecoveryConfig(),
    "bn re-estimation": RecoveryConfig(bn_images=64, bn_batch_size=16),
    "fine-tuning and bn re-estimation": RecoveryConfig(finetune_steps=5, finetune_lr=1e-2, finetune_batch_size=16,
                                                      bn_images=64),
}


@pytest.mark.parametrize("recovery", list(RECOVERIES))
def test_structured_pruning_zeroes_the_whole_channel(calib, recovery):
    model = _randomise_norms(TinyVGG())
    original = {k: v.clone() for k, v in model.state_dict().items()}
    plan = CompressionPlan(prune=PruneConfig(0.5, scope="layer", structured=True), recovery=RECOVERIES[recovery])
    small = compress(model, plan, calib)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    outputs = _outputs(small, ["features.1", "features.5", "classifier.2"], x)
    modules = dict(small.named_modules())
    for layer, norm in (("features.0", "features.1"), ("features.4", "features.5")):
        dead = _pruned_filters(small, layer)
        assert dead.size == (4 if layer == "features.0" else 8)
        bn = modules[norm]
        assert not bn.weight[dead].any() and not bn.bias[dead].any()
        assert bn.weight[np.setdiff1d(np.arange(bn.num_features), dead)].all()  # the kept channels keep theirs
        assert not outputs[norm][:, dead].any()  # exactly zero after the batch norm
        assert outputs[norm].abs().amax(dim=(0, 2, 3)).count_nonzero() == bn.num_features - dead.size
        assert torch.isfinite(bn.running_var).all()
    if RECOVERIES[recovery].bn_images:  # re-estimated statistics, still a zero output
        assert not torch.equal(modules["features.5"].running_mean, original["features.5.running_mean"])
    for layer in ("features.0", "classifier.2"):  # own biases of pruned filters are zero
        dead = _pruned_filters(small, layer)
        assert dead.size > 0 and not modules[layer].bias[dead].any()
    assert not outputs["classifier.2"][:, _pruned_filters(small, "classifier.2")].any()
    # the input model is untouched
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())


def test_an_untraceable_model_keeps_its_batch_norms_with_a_warning(caplog):
    model = _randomise_norms(Untraceable())
    plan = CompressionPlan(prune=PruneConfig(0.5, scope="layer", structured=True))
    with caplog.at_level(logging.WARNING, logger="moo_compress.compress.api"):
        small = compress(model, plan)
    assert "cannot trace Untraceable" in caplog.text
    dead = _pruned_filters(small, "conv1")
    assert dead.size == 4
    assert not small.conv1.bias[dead].any()  # the layer's own bias is still zeroed
    assert torch.equal(small.bn1.weight, model.bn1.weight) and torch.equal(small.bn1.bias, model.bn1.bias)


def test_removable_only_prunes_only_removable_layers_and_keeps_other_techniques():
    model = _randomise_norms(Residual())
    plan = CompressionPlan(prune=PruneConfig(0.5, scope="layer", structured=True, removable_only=True),
                           quantize=QuantizeConfig(8))
    state = compression_state(compress(model, plan))
    assert {n for n, s in state.layers.items() if s.prune is not None} == {"conv1"}
    assert set(state.layers) == {"stem", "conv1", "conv2", "fc"}  # every layer is still quantized
    assert all(s.quant is not None for s in state.layers.values())
    zero_rows = {n: int((~s.weight().reshape(s.shape[0], -1).any(1)).sum()) for n, s in state.layers.items()}
    assert zero_rows == {"stem": 0, "conv1": 4, "conv2": 0, "fc": 0}
    assert plan.label() == "P50rl-Q8"
    # without quantization the layers that may not be pruned are not compressed at all
    only = compression_state(compress(model, CompressionPlan(prune=PruneConfig(0.5, structured=True,
                                                                               removable_only=True))))
    assert set(only.layers) == {"conv1"}


def test_removable_only_global_scope_ranks_only_the_removable_filters():
    model = TinyVGG()
    plan = CompressionPlan(prune=PruneConfig(0.4, structured=True, removable_only=True))
    small = compress(model, plan)
    removable = ["features.0", "features.4", "classifier.2"]
    modules = dict(small.named_modules())
    total = sum(modules[n].weight.numel() for n in removable)
    zeros = sum(int((modules[n].weight == 0).sum()) for n in removable)
    largest_filter = max(modules[n].weight[0].numel() for n in removable)
    assert abs(zeros - 0.4 * total) <= largest_filter / 2 + 1e-9  # the target over the removable layers only
    assert _pruned_filters(small, "classifier.4").size == 0  # the head feeds the output: not pruned
    assert set(compression_state(small).layers) == set(removable)


def test_removable_only_needs_a_traceable_model_and_structured_pruning():
    plan = CompressionPlan(prune=PruneConfig(0.5, structured=True, removable_only=True))
    with pytest.raises(ConfigError, match="torch.fx cannot trace the model.*'exclude'.*structured=True"):
        compress(Untraceable(), plan)
    with pytest.raises(ConfigError, match="removable_only=True needs structured=True"):
        PruneConfig(0.5, removable_only=True)
    with pytest.raises(ConfigError, match="removable_only must be True or False"):
        PruneConfig(0.5, structured=True, removable_only=1)
    assert CompressionPlan(prune=PruneConfig(0.5, structured=True, removable_only=True)).label() == "P50r"
    assert CompressionPlan(prune=PruneConfig(0.5, structured=True)).label() == "P50s"


def test_fine_tuning_keeps_removed_channels_at_zero_before_a_residual_addition(calib):
    # conv2 -> bn2 -> (+ identity) -> relu: the addition passes gradient to bn2's pruned channels
    model = _randomise_norms(Residual())
    recovery = RecoveryConfig(finetune_steps=5, finetune_lr=1e-2, finetune_batch_size=16, bn_images=64)
    small = compress(model, CompressionPlan(prune=PruneConfig(0.5, scope="layer", structured=True),
                                            recovery=recovery), calib)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    outputs = _outputs(small, ["bn0", "bn1", "bn2"], x)
    for layer, norm in (("stem", "bn0"), ("conv1", "bn1"), ("conv2", "bn2")):
        dead = _pruned_filters(small, layer)
        assert dead.size == 4
        assert not outputs[norm][:, dead].any()
    kept = np.setdiff1d(np.arange(8), _pruned_filters(small, "conv2"))
    assert not torch.equal(small.bn2.bias[kept], model.bn2.bias[kept])  # fine-tuning did train the norms
