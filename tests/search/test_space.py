"""Search spaces: the shipped files load, genes decode to the intended plans, bad files name the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from moo_compress.errors import ConfigError
from moo_compress.models import model_defaults
from moo_compress.search.space import FAMILY_SPACES, SearchSpace, list_spaces, load_space


def test_every_shipped_space_loads_and_decodes() -> None:
    names = list_spaces()
    assert {"default", "vgg19", "resnet50", "mobilenetv2", "cifar_resnet", "per_group", "paper"} <= set(names)
    assert set(FAMILY_SPACES.values()) <= set(names)
    for name in names:
        space = load_space(name)
        enc = space.encoding(model_defaults("vgg19").layer_groups)
        assert enc.variables and enc.grid_size() > 1
        for x in (np.zeros(len(enc.variables), int), enc.upper_bounds):
            plan = enc.decode(x)
            assert plan.to_dict() == type(plan).from_dict(plan.to_dict()).to_dict()
        assert SearchSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()  # round trip


def test_paper_space_is_the_studys_eight_plan_grid() -> None:
    space = load_space("paper")
    enc = space.encoding({})
    assert space.algorithm == "grid" and enc.grid_size() == 8
    labels = sorted(enc.decode(x).label() for x in enc.grid())
    assert labels == sorted(["recovery only", "Q8A8", "C16", "C16-Q8A8", "P50l", "P50l-Q8A8", "P50l-C16",
                             "P50l-C16-Q8A8"])


def _space(**genes: object) -> dict:
    return {"genes": genes or {"sparsity": {"choices": [0.0, 0.5]}}}


def test_genes_are_ordered_weakest_first_and_off_decodes_to_none() -> None:
    space = SearchSpace.from_dict(_space(sparsity={"low": 0.0, "high": 0.5, "step": 0.25},
                                         clusters={"choices": [16, "off", 64]},
                                         weight_bits={"choices": [4, 32, 8]}))
    choices = {g.kind: g.choices for g in space.genes}
    assert choices == {"sparsity": (0.0, 0.25, 0.5), "clusters": (None, 64, 16), "weight_bits": (None, 8, 4)}
    enc = space.encoding({})
    assert enc.decode([0, 0, 0]).is_identity
    plan = enc.decode([2, 2, 1])
    assert plan.prune.sparsity == 0.5 and plan.cluster.n_clusters == 16 and plan.quantize.weight_bits == 8


def test_yaml_off_keyword_parses() -> None:
    space = SearchSpace.from_dict(yaml.safe_load("genes: {clusters: {choices: [off, 8]}}"))
    assert space.genes[0].choices == (None, 8)


def test_per_group_plans_follow_the_architecture_groups() -> None:
    space = load_space("per_group")
    groups = model_defaults("resnet20").layer_groups
    enc = space.encoding(groups)
    assert len(enc.variables) == 3 * len(groups)
    x = np.zeros(len(enc.variables), int)
    x[[v.name for v in enc.variables].index("layer3.weight_bits")] = 3  # 4 bits in layer3 only
    plan = enc.decode(x)
    by_name = {g.name: g for g in plan.groups}
    assert by_name["layer3"].quantize.weight_bits == 4
    assert by_name["layer1"].quantize is None and by_name["layer3"].patterns == ("layer3.*",)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"genes": {"sparsity": {"choices": [0.0, 1.5]}}}, r"genes\.sparsity\.choices\[1\]=1\.5"),
        ({"genes": {"clusters": {"choices": [1]}}}, r"genes\.clusters\.choices\[0\]"),
        ({"genes": {"weight_bits": {"choices": [8, 1]}}}, r"genes\.weight_bits\.choices\[1\]"),
        ({"genes": {"sparsty": {"choices": [0.5]}}}, r"unknown key genes\.sparsty; did you mean 'sparsity'"),
        ({"genes": {}}, r"genes is empty"),
        ({"genes": {"sparsity": {"low": 0.1}}}, r"genes\.sparsity needs 'choices'"),
        ({**_space(), "granularity": "layer"}, r"granularity must be 'global' or 'groups'"),
        ({**_space(), "objectives": {"robustness": "mce2"}}, r"objectives\.robustness 'mce2' is unknown"),
        ({**_space(), "constraints": {"max_accuracy_drop": -1}}, r"constraints\.max_accuracy_drop"),
        ({**_space(), "constraints": {"min_compression_ratio": 0.5}}, r"constraints\.min_compression_ratio"),
        ({**_space(), "prune": {"scope": "glob"}}, r"scope"),
        ({**_space(), "recovery": {"bn_image": 10}}, r"unknown key recovery\.bn_image"),
        ({**_space(), "algorithm": {"name": "cmaes"}}, r"algorithm\.name"),
        ({**_space(), "colour": "red"}, r"unknown key space\.colour"),
    ],
)
def test_malformed_spaces_name_the_key(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchSpace.from_dict(doc, source="bad.yaml")


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="search space 'vgg91' not found; did you mean 'vgg19'"):
        load_space("vgg91")
    bad = tmp_path / "bad.yaml"
    bad.write_text("genes: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space(bad)
