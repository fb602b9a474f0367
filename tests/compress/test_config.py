import json
import os
import subprocess
import sys

import pytest

from moo_compress.compress import (
    ClusterConfig,
    CompressionPlan,
    LayerGroup,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
)
from moo_compress.errors import ConfigError

GLOBAL_PLAN = CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(8))
GROUP_PLAN = CompressionPlan(
    groups=(
        LayerGroup("block1", ("features.0", "features.3"), quantize=QuantizeConfig(8, per_channel=False)),
        LayerGroup(
            "classifier",
            ("classifier.*",),
            prune=PruneConfig(0.8, scope="layer"),
            cluster=ClusterConfig(8, init="linear"),
        ),
    ),
    exclude_first_conv=True,
    exclude=("features.49",),
    recovery=RecoveryConfig(bn_images=256, finetune_steps=10),
    seed=3,
)

CONFIGS = [
    PruneConfig(0.5),
    PruneConfig(0.3, scope="layer", structured=True),
    PruneConfig(0.3, structured=True, removable_only=True),
    ClusterConfig(16),
    ClusterConfig(4, init="linear", preserve_sparsity=False),
    QuantizeConfig(8),
    QuantizeConfig(4, per_channel=False, symmetric=False, activation_bits=8),
    RecoveryConfig(),
    RecoveryConfig(bn_images=100, finetune_steps=5, finetune_lr=1e-3, finetune_batch_size=8),
    LayerGroup("stem", ("conv1",), prune=PruneConfig(0.2)),
    CompressionPlan(),
    GLOBAL_PLAN,
    GROUP_PLAN,
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{type(c).__name__}:{c.key()}")
def test_json_round_trip(config):
    assert type(config).from_dict(config.to_dict()) == config
    assert type(config).from_json(config.to_json()) == config
    assert type(config).from_dict(json.loads(json.dumps(config.to_dict()))).key() == config.key()
    assert json.loads(config.to_json()) == config.to_dict()


def test_canonical_form_omits_defaults_and_normalises_numbers():
    assert QuantizeConfig(8).to_dict() == {"weight_bits": 8}
    assert CompressionPlan().to_dict() == {}
    assert PruneConfig(0).key() == PruneConfig(0.0).key()
    assert ClusterConfig(16.0).n_clusters == 16 and isinstance(ClusterConfig(16.0).n_clusters, int)
    assert GLOBAL_PLAN.to_json() == (
        '{"cluster":{"n_clusters":16},"prune":{"sparsity":0.5},"quantize":{"weight_bits":8}}'
    )


@pytest.mark.slow
def test_key_is_stable_across_processes():
    code = (
        "import sys; from moo_compress.compress import CompressionPlan; "
        "print(CompressionPlan.from_json(sys.argv[1]).key())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code, GROUP_PLAN.to_json()], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == GROUP_PLAN.key()
    # a golden value: if the canonical form changes, every cached result keyed by plans is invalidated
    assert GLOBAL_PLAN.key() == GOLDEN_KEY


# Changes whenever a default or the resolved form changes (and must: cached results are keyed by it).
GOLDEN_KEY = "40fffd21b51df994"  # PruneConfig.removable_only added

# For every config field that has a default: another valid value.
OTHER_VALUES = {
    PruneConfig: {"scope": "layer", "structured": True, "removable_only": True},
    ClusterConfig: {"init": "kmeans++", "preserve_sparsity": False},
    QuantizeConfig: {"per_channel": False, "symmetric": False, "activation_bits": 8, "weight_range": "minmax"},
    RecoveryConfig: {"bn_images": 64, "bn_batch_size": 32, "finetune_steps": 5, "finetune_lr": 1e-3,
                     "finetune_batch_size": 16, "finetune_images": 32, "finetune_distill": 1.0,
                     "finetune_temperature": 2.0, "finetune_augment": "augmix", "finetune_label_weight": 0.5,
                     "finetune_bn": "frozen"},
    CompressionPlan: {"prune": PruneConfig(0.5), "cluster": ClusterConfig(8), "quantize": QuantizeConfig(4),
                      "groups": (LayerGroup("g", ("conv*",)),), "exclude_first_conv": True,
                      "exclude_classifier": True, "exclude": ("fc*",), "recovery": RecoveryConfig(bn_images=8),
                      "seed": 1},
}
REQUIRED = {PruneConfig: {"sparsity": 0.5}, ClusterConfig: {"n_clusters": 16}, QuantizeConfig: {"weight_bits": 8},
            RecoveryConfig: {}, CompressionPlan: {}}
# Fields whose other value needs another field set too (in both configs compared).
COMPANIONS = {(PruneConfig, "removable_only"): {"structured": True}}


def test_every_defaulted_field_has_an_alternative_listed():
    import dataclasses

    for cls, others in OTHER_VALUES.items():
        defaulted = {f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        assert defaulted == set(others), cls.__name__


@pytest.mark.parametrize(("cls", "name"), [(c, n) for c, o in OTHER_VALUES.items() for n in o])
def test_a_default_is_part_of_the_key(cls, name):
    """A plan that relies on a default is keyed by the default's value: changing the default (here:
    building the config with another value) changes the key, and the resolved form names the field."""
    base = {**REQUIRED[cls], **COMPANIONS.get((cls, name), {})}
    default = cls(**base)
    other = cls(**base, **{name: OTHER_VALUES[cls][name]})
    # a field added later is left out at the value that behaves as before it existed: earlier keys hold
    assert (name in default.to_dict(defaults=True)) != (name in cls.added_fields) and name not in default.to_dict()
    assert other.key() != default.key()
    plan_default = CompressionPlan(groups=(LayerGroup("g", ("a",), **{_slot(cls): default}),)) if _slot(cls) else None
    if plan_default is not None:  # nested: the plan's key follows its configs' defaults
        plan_other = CompressionPlan(groups=(LayerGroup("g", ("a",), **{_slot(cls): other}),))
        assert plan_other.key() != plan_default.key()
        assert name in json.dumps(plan_default.to_dict(defaults=True))


def _slot(cls):
    return {PruneConfig: "prune", ClusterConfig: "cluster", QuantizeConfig: "quantize"}.get(cls)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: PruneConfig(1.2), "outside [0, 1)"),
        (lambda: PruneConfig(50), "for 50% write 0.5"),
        (lambda: PruneConfig(-0.1), "fraction of weights"),
        (lambda: PruneConfig(0.5, scope="glob"), "did you mean 'global'"),
        (lambda: PruneConfig(0.5, structured="yes"), "True or False"),
        (lambda: ClusterConfig(0), "use 2 to 256"),
        (lambda: ClusterConfig(1000), "use 2 to 256"),
        (lambda: ClusterConfig(True), "must be an integer"),
        (lambda: ClusterConfig(16, init="kmeans"), "did you mean 'kmeans++'"),
        (lambda: QuantizeConfig(1), "symmetric 1-bit quantization has a single level"),
        (lambda: QuantizeConfig(1, symmetric=False), "use 2 bits or more"),
        (lambda: QuantizeConfig(12), "use one of 2, 3, 4, 5, 6, 7, 8, 16"),
        (lambda: QuantizeConfig(8, activation_bits=32), "activation_bits=32"),
        (lambda: RecoveryConfig(bn_images=-1), "bn_images=-1"),
        (lambda: RecoveryConfig(finetune_lr=5.0), "try 1e-4"),
        (lambda: LayerGroup("g", "layer1.*"), "write ('layer1.*',)"),
        (lambda: LayerGroup("g", ()), "at least one"),
        (lambda: CompressionPlan(prune={"sparsity": 0.5}), "PruneConfig.from_dict"),
        (lambda: CompressionPlan(groups=(LayerGroup("a", ("x",)), LayerGroup("a", ("y",)))), "repeats the group name"),
        (lambda: CompressionPlan(seed=-1), "seed=-1"),
        (lambda: CompressionPlan(groups=(None,)), "must hold LayerGroup objects"),
        (lambda: CompressionPlan.from_dict({"prune": {"sparsity": 0.5}, "sed": 1}), "did you mean 'seed'"),
        (lambda: CompressionPlan.from_dict({"prune": {"sparsty": 0.5}}), "did you mean 'sparsity'"),
        (lambda: QuantizeConfig.from_dict({}), "weight_bits"),
        (lambda: CompressionPlan.from_json("{"), "invalid JSON"),
    ],
)
def test_invalid_configs_raise_clear_errors(build, expected):
    with pytest.raises(ConfigError) as info:
        build()
    assert expected in str(info.value)


def test_configs_are_frozen_and_hashable():
    with pytest.raises(AttributeError):
        GLOBAL_PLAN.seed = 1  # type: ignore[misc]
    assert len({GLOBAL_PLAN, CompressionPlan.from_dict(GLOBAL_PLAN.to_dict())}) == 1


def test_for_layer_groups_builds_self_contained_groups():
    layer_groups = {"block1": ("features.0", "features.3"), "classifier": ("classifier.*",)}
    plan = CompressionPlan.for_layer_groups(layer_groups, {"classifier": {"quantize": QuantizeConfig(4)}}, seed=2)
    assert plan.groups == (LayerGroup("classifier", ("classifier.*",), quantize=QuantizeConfig(4)),)
    assert plan.seed == 2
    assert plan.configs_for("classifier") == (None, None, QuantizeConfig(4))
    with pytest.raises(ConfigError, match="did you mean 'block1'"):
        CompressionPlan.for_layer_groups(layer_groups, {"blok1": {}})
    with pytest.raises(ConfigError, match="unknown key 'quant'"):
        CompressionPlan.for_layer_groups(layer_groups, {"block1": {"quant": QuantizeConfig(4)}})


def test_label_and_identity():
    assert GLOBAL_PLAN.label() == "P50-C16-Q8"
    assert CompressionPlan().is_identity and not GLOBAL_PLAN.is_identity
    assert "classifier:P80l-C8" in GROUP_PLAN.label()


A16_GROUP = LayerGroup("fc", ("fc",), quantize=QuantizeConfig(8, activation_bits=16))
# plan -> (quantizes activations, needs calibration images), written out by hand
CALIBRATION_CASES = {
    "none": (CompressionPlan(), False, False),
    "weights only": (GLOBAL_PLAN, False, False),
    "groups with recovery": (GROUP_PLAN, False, True),
    "bn re-estimation": (CompressionPlan(recovery=RecoveryConfig(bn_images=64)), False, True),
    "fine-tuning": (CompressionPlan(quantize=QuantizeConfig(4), recovery=RecoveryConfig(finetune_steps=5)), False,
                    True),
    "fine-tuning settings only": (CompressionPlan(recovery=RecoveryConfig(finetune_lr=1e-3, bn_batch_size=8)), False,
                                  False),
    "w8a8": (CompressionPlan(quantize=QuantizeConfig(8, activation_bits=8)), True, True),
    "a16 in a group": (CompressionPlan(groups=(A16_GROUP,)), True, True),
}


@pytest.mark.parametrize("name", list(CALIBRATION_CASES))
def test_plan_says_whether_it_needs_calibration_images(name):
    plan, activations, needs = CALIBRATION_CASES[name]
    assert plan.quantizes_activations is activations
    assert plan.needs_calibration is needs
    assert CompressionPlan.from_json(plan.to_json()).needs_calibration is needs
