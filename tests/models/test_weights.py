"""Checkpoint reading, weights resolution and pretrained loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moo_compress.errors import CheckpointError, UnknownNameError, WeightsNotFoundError
from moo_compress.models import (
    create_model,
    find_weights,
    load_pretrained,
    read_checkpoint,
    resolve_weights,
    save_checkpoint,
)


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.inference_mode():
        return model.eval()(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("layout", ["raw", "state_dict", "model", "dataparallel"])
def test_checkpoint_layouts_load_identically(tmp_path: Path, layout: str) -> None:
    source = create_model("resnet20")
    sd = source.state_dict()
    if layout == "dataparallel":
        obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "best_prec1": 91.0}
    elif layout == "raw":
        obj = sd
    else:
        obj = {layout: sd, "epoch": 3}
    path = tmp_path / "resnet20.th"
    torch.save(obj, path)
    loaded = load_pretrained("resnet20", weights=path)
    torch.testing.assert_close(_outputs(loaded.model), _outputs(source))
    assert loaded.num_classes == 10
    assert len(loaded.weights_sha256) == 64


def test_mismatch_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    sd = create_model("resnet20").state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["linear.bias"]
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"missing keys: linear\.bias.*unexpected keys: extra\.weight"):
        load_pretrained("resnet20", weights=path)


def test_wrong_architecture_reports_shapes(tmp_path: Path) -> None:
    path = tmp_path / "r32.pt"
    torch.save(create_model("resnet20").state_dict(), path)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_pretrained("resnet32", weights=path)


def test_class_count_mismatch_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "r20-100.pt"
    torch.save(create_model("resnet20", num_classes=100).state_dict(), path)
    with pytest.raises(CheckpointError, match="100 outputs but cifar10 has 10 classes"):
        load_pretrained("resnet20", "cifar10", weights=path, num_classes=10)
    assert load_pretrained("resnet20", "cifar100", weights=path).num_classes == 100


def test_garbage_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_normalisation_travels_with_checkpoint(tmp_path: Path) -> None:
    model = create_model("resnet20")
    saved = save_checkpoint(tmp_path / "a.pt", model, metadata={"arch": "resnet20", "mean": [0.1, 0.2, 0.3],
                                                               "std": [0.5, 0.5, 0.5]})
    loaded = load_pretrained("resnet20", weights=saved)
    assert loaded.mean == (0.1, 0.2, 0.3) and loaded.std == (0.5, 0.5, 0.5)
    # sidecar JSON for a plain state_dict
    raw = tmp_path / "b.pt"
    torch.save(model.state_dict(), raw)
    (tmp_path / "b.pt.json").write_text(json.dumps({"mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2]}))
    assert load_pretrained("resnet20", weights=raw).mean == (0.4, 0.4, 0.4)
    # no metadata: the architecture's defaults (ImageNet statistics for the CIFAR ResNets)
    (tmp_path / "b.pt.json").unlink()
    assert load_pretrained("resnet20", weights=raw).mean == (0.485, 0.456, 0.406)


def test_arch_recorded_in_checkpoint_must_match(tmp_path: Path) -> None:
    saved = save_checkpoint(tmp_path / "a.pt", create_model("resnet20"), metadata={"arch": "resnet20"})
    with pytest.raises(CheckpointError, match="pass --arch resnet20"):
        load_pretrained("resnet32", weights=saved)


def test_find_weights_matches_arch_and_dataset_names(tmp_path: Path) -> None:
    for name in ["resnet200-aa.th", "resnet20-12fca82f.th", "cifar100_resnet20-23dac2f1.pt", "vgg19_bn-cifar10.pt",
                 "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert find_weights(tmp_path, "resnet20", "cifar10") == tmp_path / "resnet20-12fca82f.th"
    assert find_weights(tmp_path, "resnet20", "cifar100") == tmp_path / "cifar100_resnet20-23dac2f1.pt"
    assert find_weights(tmp_path, "vgg19", "cifar10") == tmp_path / "vgg19_bn-cifar10.pt"
    assert find_weights(tmp_path, "vgg19", "cifar100") is None
    (tmp_path / "cifar100").mkdir()
    (tmp_path / "cifar100" / "vgg19.pt").write_bytes(b"x")
    assert find_weights(tmp_path, "vgg19", "cifar100") == tmp_path / "cifar100" / "vgg19.pt"


def test_resolution_order_and_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOO_COMPRESS_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights("vgg19", "cifar10")
    message = str(info.value)
    assert str(tmp_path) in message and "--weights" in message and "moo_compress.train" in message
    assert "chenyaofo" in message  # the published checkpoint is named even when offline
    found = tmp_path / "vgg19-cifar10.pt"
    found.write_bytes(b"x")
    assert resolve_weights("vgg19", "cifar10") == found
    explicit = tmp_path / "other.pt"
    explicit.write_bytes(b"x")
    assert resolve_weights("vgg19", "cifar10", weights=explicit) == explicit
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_weights("vgg19", "cifar10", weights=tmp_path / "nope.pt")
    with pytest.raises(UnknownNameError):
        resolve_weights("vgg20", "cifar10")


@pytest.mark.shared_data
@pytest.mark.slow
def test_shared_resnet20_loads_and_scores(shared_weights_dir: Path, cifar10_root: Path) -> None:
    from moo_compress.data import load_dataset
    from moo_compress.evaluation import evaluate_accuracy

    loaded = load_pretrained("resnet20", weights=shared_weights_dir / "resnet20-12fca82f.th", num_classes=10)
    test = load_dataset("cifar10", "test", data_root=cifar10_root)
    acc = evaluate_accuracy(loaded.model, test.images, test.labels, mean=loaded.mean, std=loaded.std)
    assert acc >= 0.80  # README of the shared weights: 81.03%
    assert np.isclose(acc, 0.8103, atol=0.002)


@pytest.mark.shared_data
@pytest.mark.slow
def test_shared_vgg19_matches_its_readme(shared_weights_dir: Path, cifar10_root: Path) -> None:
    from moo_compress.data import load_dataset
    from moo_compress.evaluation import evaluate_accuracy

    loaded = load_pretrained("vgg19", "cifar10", weights_dir=shared_weights_dir)  # found by name
    assert loaded.weights_path.name == "vgg19_bn-cifar10.pt"
    test = load_dataset("cifar10", "test", data_root=cifar10_root)
    acc = evaluate_accuracy(loaded.model, test.images, test.labels, mean=loaded.mean, std=loaded.std,
                            precision="bf16")
    assert abs(100 * acc - 86.26) <= 0.5  # README: 86.26% under bf16 autocast (86.29% fp32)
