"""The batched evaluator: normalisation, batching, precision and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from moo_compress.errors import ConfigError, DataFormatError
from moo_compress.evaluation import Evaluator, evaluate_accuracy, resolve_device
from moo_compress.evaluation.runtime import default_batch_size

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 5)).eval()


def _images(n: int = 37) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def _reference_predictions(model: nn.Module, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x).argmax(1).numpy()


def test_predictions_match_a_plain_normalised_forward() -> None:
    model, images = _model(), _images()
    expected = _reference_predictions(model, images)
    for batch_size in (1, 8, 256):
        got = Evaluator(model, mean=MEAN, std=STD, batch_size=batch_size).predict(images)
        np.testing.assert_array_equal(got, expected)


def test_accuracy_counts_matches() -> None:
    model, images = _model(), _images()
    labels = _reference_predictions(model, images).copy()
    labels[:10] = (labels[:10] + 1) % 5
    acc = evaluate_accuracy(model, images, labels, mean=MEAN, std=STD)
    assert acc == pytest.approx(27 / 37)


def test_bf16_agrees_with_fp32_on_most_images() -> None:
    model, images = _model(), _images(200)
    fp32 = Evaluator(model, mean=MEAN, std=STD).predict(images)
    bf16 = Evaluator(model, mean=MEAN, std=STD, precision="bf16").predict(images)
    assert np.mean(fp32 == bf16) > 0.9


def test_read_only_memmap_input(tmp_path) -> None:
    images = _images()
    np.save(tmp_path / "x.npy", images)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    model = _model()
    np.testing.assert_array_equal(Evaluator(model, mean=MEAN, std=STD).predict(mapped),
                                  _reference_predictions(model, images))


def test_bad_inputs_are_clear_errors() -> None:
    evaluator = Evaluator(_model(), mean=MEAN, std=STD)
    with pytest.raises(DataFormatError, match="uint8 array of shape"):
        evaluator.predict(_images().astype(np.float32))
    with pytest.raises(DataFormatError, match="uint8 array of shape"):
        evaluator.predict(_images()[..., :1])
    with pytest.raises(DataFormatError, match="labels must be"):
        evaluator.accuracy(_images(5), np.zeros(4, dtype=np.int64))
    with pytest.raises(ConfigError, match="unknown precision"):
        Evaluator(_model(), mean=MEAN, std=STD, precision="fp8")
    with pytest.raises(ConfigError, match="batch_size"):
        Evaluator(_model(), mean=MEAN, std=STD, batch_size=0)


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu0")


class _SmallMemory(nn.Module):
    """Raises the out-of-memory error a GPU would for batches above 8 images."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 8:
            raise torch.OutOfMemoryError("simulated: batch too large for device memory")
        return self.inner(x)


def test_out_of_memory_halves_the_batch_size() -> None:
    inner, images = _model(), _images(37)
    evaluator = Evaluator(_SmallMemory(inner), mean=MEAN, std=STD, batch_size=64)
    np.testing.assert_array_equal(evaluator.predict(images), _reference_predictions(inner, images))
    assert evaluator.batch_size == 8


class _BatchSizes(nn.Module):
    """Records the batch size of every forward pass (no batch norm: the evaluator keeps it as it is)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.sizes = nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.inner(x)


def test_images_are_cut_into_equal_batches() -> None:
    evaluator = Evaluator(_BatchSizes(), mean=MEAN, std=STD, batch_size=64)
    evaluator.predict(_images(100))
    assert evaluator.model.sizes == [50, 50]


def test_default_batch_size_follows_the_cpu_threads() -> None:
    evaluator, threads = Evaluator(_BatchSizes(), mean=MEAN, std=STD), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        evaluator.predict(_images(100))  # 64 per thread: 50 + 50
        assert evaluator.model.sizes == [50, 50]
        assert default_batch_size(torch.device("cpu")) == 64
    finally:
        torch.set_num_threads(threads)


def test_batch_norms_are_folded_without_changing_predictions() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5))
    with torch.no_grad():  # non-trivial statistics, so that folding has something to fold
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(0.5, 1.5)
    images = _images(64)
    evaluator = Evaluator(model, mean=MEAN, std=STD)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in evaluator.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the caller's model is untouched
    np.testing.assert_array_equal(evaluator.predict(images), _reference_predictions(model, images))


@pytest.mark.parametrize("arch", ["vgg11", "resnet20", "resnet18", "mobilenetv2"])
def test_every_zoo_family_is_folded(arch: str) -> None:
    from moo_compress.models import create_model

    model = create_model(arch)
    folded = Evaluator(model, mean=MEAN, std=STD).model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_batch_norm_folding_falls_back_to_eager_for_untraceable_models() -> None:
    import torch
    from torch import nn

    from moo_compress.evaluation.evaluator import fold_batchnorm

    class Branchy(nn.Module):  # data-dependent control flow: torch.fx cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn(self.conv(x))
            if y.mean() > 0:
                y = y * 2
            return self.fc(y.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Branchy()
    model.bn.running_mean.uniform_(-1, 1)
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    folded = fold_batchnorm(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())  # not fused: an eager copy
    assert folded is not model and torch.equal(folded(x), model(x))
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    plain[1].running_var.uniform_(0.5, 2)
    fused = fold_batchnorm(plain)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(fused(x), plain(x), atol=1e-5)
