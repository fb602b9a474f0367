import dataclasses

import numpy as np
import pytest
import torch

from moo_compress.compress import (
    CalibrationData,
    ClusterConfig,
    CompressionPlan,
    PruneConfig,
    QuantizeConfig,
    RecoveryConfig,
    compress,
    compression_state,
    recalibrate_batchnorm,
)
from moo_compress.errors import ConfigError, DataFormatError

from .conftest import weight

LAYERS = ("conv1", "conv2", "fc1", "fc2")


def test_batchnorm_reestimation_matches_the_data(tiny, calibration):
    plan = CompressionPlan(prune=PruneConfig(0.5), recovery=RecoveryConfig(bn_images=64, bn_batch_size=64))
    small = compress(tiny, plan, calibration)
    # with one batch of all the images the running mean is exactly the batch mean of bn1's input
    x = calibration.tensor(slice(0, 64))
    with torch.no_grad():
        expected = small.conv1(x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(small.bn1.running_mean, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(small.bn1.running_mean, tiny.bn1.running_mean)
    assert small.bn1.momentum == tiny.bn1.momentum and not small.training


def test_batchnorm_statistics_are_population_moments_over_all_batches(tiny, calibration):
    model = compress(tiny, CompressionPlan())
    recalibrate_batchnorm(model, calibration, n_images=48, batch_size=16, seed=0)
    # bn1 sees conv1's output, which no batch norm precedes: its statistics are those of all 48 images
    x = calibration.tensor(slice(0, 48)).double()
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, tiny.conv1.weight.double(), tiny.conv1.bias.double(), padding=1)
    flat = y.permute(1, 0, 2, 3).reshape(y.shape[1], -1)
    torch.testing.assert_close(model.bn1.running_mean.double(), flat.mean(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.bn1.running_var.double(), flat.var(1, correction=1), rtol=1e-5, atol=1e-6)


def test_batchnorm_statistics_do_not_depend_on_image_order(tiny, calibration):
    reordered = CalibrationData(
        calibration.images[::-1].copy(), calibration.mean, calibration.std, calibration.labels[::-1].copy()
    )
    a, b = compress(tiny, CompressionPlan()), compress(tiny, CompressionPlan())
    recalibrate_batchnorm(a, calibration, n_images=64, batch_size=16, seed=0)
    recalibrate_batchnorm(b, reordered, n_images=64, batch_size=16, seed=0)
    # the batches are drawn from the images' canonical order, so reordering them changes nothing
    for name in ("bn1", "bn2"):
        for stat in ("running_mean", "running_var"):
            torch.testing.assert_close(getattr(getattr(a, name), stat), getattr(getattr(b, name), stat))
    # another seed forms other batches; bn2's input went through bn1's per-batch normalisation
    c = compress(tiny, CompressionPlan())
    recalibrate_batchnorm(c, calibration, n_images=64, batch_size=16, seed=1)
    torch.testing.assert_close(a.bn1.running_var, c.bn1.running_var, rtol=1e-5, atol=1e-6)
    assert not torch.equal(a.bn2.running_var, c.bn2.running_var)
    torch.testing.assert_close(a.bn2.running_var, c.bn2.running_var, rtol=0.05, atol=1e-3)


def test_default_batch_holds_all_cifar_calibration_images(tiny, calibration):
    model = compress(tiny, CompressionPlan())
    recalibrate_batchnorm(model, calibration, n_images=64)
    assert model.bn1.num_batches_tracked.item() == 1


def test_skewed_calibration_prefix_is_reported(tiny, caplog):
    images = np.random.default_rng(0).integers(0, 256, size=(40, 16, 16, 3), dtype=np.uint8)
    sorted_by_class = CalibrationData(images, (0.5,) * 3, (0.25,) * 3, labels=np.repeat(np.arange(4), 10))
    with caplog.at_level("WARNING"):
        recalibrate_batchnorm(compress(tiny, CompressionPlan()), sorted_by_class, n_images=20, batch_size=8)
    assert "skewed" in caplog.text
    balanced = CalibrationData.from_dataset(sorted_by_class, mean=(0.5,) * 3, std=(0.25,) * 3, n=40)
    assert np.bincount(balanced.labels[:20]).tolist() == [5, 5, 5, 5]
    caplog.clear()
    with caplog.at_level("WARNING"):
        recalibrate_batchnorm(compress(tiny, CompressionPlan()), balanced, n_images=20, batch_size=8)
    assert "skewed" not in caplog.text
    with caplog.at_level("WARNING"):
        recalibrate_batchnorm(compress(tiny, CompressionPlan()), balanced, n_images=3)
    assert "fewer than the 4 classes: 1 classes go unseen" in caplog.text


def test_recalibrate_batchnorm_directly(tiny, calibration):
    model = compress(tiny, CompressionPlan())
    assert recalibrate_batchnorm(model, calibration, n_images=16, batch_size=8) == 2
    assert model.bn2.num_batches_tracked.item() == 2


@pytest.mark.parametrize(
    "plan",
    [
        CompressionPlan(prune=PruneConfig(0.5)),
        CompressionPlan(prune=PruneConfig(0.5), quantize=QuantizeConfig(4)),
        CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(8)),
        CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(8), quantize=QuantizeConfig(4, symmetric=False)),
    ],
    ids=lambda p: p.label(),
)
def test_finetuning_keeps_masks_clusters_and_grid(tiny, calibration, plan):
    tuned_plan = CompressionPlan.from_dict(
        {**plan.to_dict(), "recovery": {"finetune_steps": 6, "finetune_batch_size": 16, "finetune_lr": 1e-2}}
    )
    before = compress(tiny, plan)
    after = compress(tiny, tuned_plan, calibration)
    changed = False
    for n in LAYERS:
        w0, w1 = weight(before, n), weight(after, n)
        assert np.all(w1[w0 == 0] == 0)  # pruned weights stay pruned
        changed |= not np.array_equal(w0, w1)
        s0, s1 = compression_state(before).layers[n], compression_state(after).layers[n]
        if s0.indices is not None:
            np.testing.assert_array_equal(s0.indices, s1.indices)  # same assignment
            assert np.unique(w1[w1 != 0]).size <= 8
        if s0.quant is not None:
            np.testing.assert_array_equal(s0.quant.scale, s1.quant.scale)  # same grid
            rows = w1.reshape(w1.shape[0] if s0.quant.scale.size > 1 else 1, -1)
            grid = rows / s0.quant.scale[:, None]
            np.testing.assert_allclose(grid, np.rint(grid), atol=1e-3)
        np.testing.assert_array_equal(s1.weight(), w1)
    assert changed


def test_finetuning_lowers_the_training_loss(tiny, calibration):
    plan = CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(8), quantize=QuantizeConfig(8))
    tuned = CompressionPlan(
        prune=plan.prune,
        cluster=plan.cluster,
        quantize=plan.quantize,
        recovery=RecoveryConfig(finetune_steps=15, finetune_batch_size=32, finetune_lr=3e-3),
    )

    def loss(model):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(
                model.eval()(calibration.tensor(slice(0, 64))), torch.from_numpy(calibration.labels)
            ).item()

    assert loss(compress(tiny, tuned, calibration)) < loss(compress(tiny, plan))


@pytest.mark.slow
def test_the_reference_is_fine_tuned_like_its_plans(tiny, calibration):
    # a plan that compresses nothing but recovers (the search's reference) gets the same fine-tuning as its
    # compressed plans, else every plan's effect would include the fine-tuning the reference never had
    recovery = RecoveryConfig(finetune_steps=15, finetune_batch_size=32, finetune_lr=3e-3)

    def loss(model):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(
                model.eval()(calibration.tensor(slice(0, 64))), torch.from_numpy(calibration.labels)
            ).item()

    reference = compress(tiny, CompressionPlan(recovery=recovery), calibration)
    assert loss(reference) < loss(tiny)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(reference.state_dict().values(), tiny.state_dict().values(), strict=True)
    )


def test_calibration_data_validation_and_subsets():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 10)
    with pytest.raises(DataFormatError, match="uint8"):
        CalibrationData(images.astype(np.float32), (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(DataFormatError, match="40 integer class indices"):
        CalibrationData(images, (0.5,) * 3, (0.2,) * 3, labels[:5])
    with pytest.raises(ConfigError, match="three numbers > 0"):
        CalibrationData(images, (0.5,) * 3, (0.2, 0.0, 0.2))

    class Split:
        pass

    split = Split()
    split.images, split.labels = images, labels
    calib = CalibrationData.from_dataset(split, mean=(0.5,) * 3, std=(0.2,) * 3, n=8, seed=1)
    assert len(calib) == 8 and np.bincount(calib.labels).tolist() == [2, 2, 2, 2]
    assert (
        calib.fingerprint()
        == CalibrationData.from_dataset(split, mean=(0.5,) * 3, std=(0.2,) * 3, n=8, seed=1).fingerprint()
    )
    x = calib.tensor(slice(0, 2))
    assert x.shape == (2, 3, 8, 8) and x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x[0, :, 0, 0], (torch.from_numpy(calib.images[0, 0, 0]).float() / 255 - 0.5) / 0.2)
    assert [b.shape[0] for b in calib.batches(3, limit=7)] == [3, 3, 1]


def test_bf16_calibration_reestimates_nearly_the_same_statistics(tiny, calibration):
    import dataclasses

    plan = CompressionPlan(prune=PruneConfig(0.5), recovery=RecoveryConfig(bn_images=64, bn_batch_size=32))
    fp32 = compress(tiny, plan, calibration)
    bf16_calibration = dataclasses.replace(calibration, precision="bf16")
    bf16 = compress(tiny, plan, bf16_calibration)
    for name in ("bn1", "bn2"):
        a, b = getattr(fp32, name), getattr(bf16, name)
        torch.testing.assert_close(b.running_mean, a.running_mean, rtol=0.05, atol=0.02)
        torch.testing.assert_close(b.running_var, a.running_var, rtol=0.05, atol=0.02)
    assert bf16_calibration.fingerprint() != calibration.fingerprint()
    with pytest.raises(ConfigError, match="precision"):
        dataclasses.replace(calibration, precision="fp16")


def _kl_to(teacher, model, x, temperature=4.0):
    from moo_compress.compress.recovery import distillation_loss

    with torch.no_grad():
        return distillation_loss(model.eval()(x), teacher.eval()(x), temperature).item()


def test_the_distillation_loss_is_zero_for_the_teacher_and_scaled_by_t_squared():
    from moo_compress.compress.recovery import distillation_loss

    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    assert distillation_loss(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-7)
    other = logits.flip(1)
    p = torch.softmax(logits / 2, 1)
    by_hand = (p * (torch.log_softmax(logits / 2, 1) - torch.log_softmax(other / 2, 1))).sum(1).mean() * 4
    assert distillation_loss(other, logits, 2.0).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_distillation_brings_the_compressed_model_closer_to_the_original_and_keeps_the_compression(tiny, calibration):
    compression = {"prune": PruneConfig(0.7), "cluster": ClusterConfig(4), "quantize": QuantizeConfig(4)}
    steps = {"finetune_steps": 20, "finetune_batch_size": 32, "finetune_lr": 3e-3}
    labels_only = compress(tiny, CompressionPlan(**compression, recovery=RecoveryConfig(**steps)), calibration)
    distilled_plan = CompressionPlan(**compression, recovery=RecoveryConfig(**steps, finetune_distill=1.0))
    distilled = compress(tiny, distilled_plan, calibration)
    x = calibration.tensor(slice(0, 64))
    assert _kl_to(tiny, distilled, x) < _kl_to(tiny, labels_only, x)
    before = compress(tiny, CompressionPlan(**compression))
    for n in LAYERS:
        w0, w1 = weight(before, n), weight(distilled, n)
        assert np.all(w1[w0 == 0] == 0) and np.unique(w1[w1 != 0]).size <= 4
        np.testing.assert_array_equal(compression_state(before).layers[n].indices,
                                      compression_state(distilled).layers[n].indices)
    assert tiny.training is False  # the teacher (the caller's model) is left as it was
    again = compress(tiny, distilled_plan, calibration)  # deterministic for the plan's seed
    for n in LAYERS:
        np.testing.assert_array_equal(weight(again, n), weight(distilled, n))


def test_the_training_pool_is_a_prefix_of_the_calibration_images(tiny, calibration):
    steps = {"finetune_steps": 6, "finetune_batch_size": 8, "finetune_lr": 1e-2}
    pooled = CompressionPlan(prune=PruneConfig(0.5), recovery=RecoveryConfig(**steps, finetune_images=16))
    prefix = CalibrationData(calibration.images[:16], calibration.mean, calibration.std, calibration.labels[:16])
    # drawing from the first 16 of 64 images is drawing from those 16 images alone
    a, b = compress(tiny, pooled, calibration), compress(tiny, pooled, prefix)
    for n in LAYERS:
        np.testing.assert_array_equal(weight(a, n), weight(b, n))
    with pytest.raises(ConfigError, match="finetune_images=100 but the calibration data holds 64"):
        compress(tiny, CompressionPlan(recovery=RecoveryConfig(**steps, finetune_images=100)), calibration)


def test_recovery_fields_added_later_keep_earlier_plan_keys():
    plan = CompressionPlan(recovery=RecoveryConfig(bn_images=512))
    # the key of this plan as written before finetune_images / finetune_distill / finetune_temperature existed
    assert plan.key() == "4ac9e7552db11279"
    assert CompressionPlan(recovery=RecoveryConfig(bn_images=512, finetune_distill=1.0)).key() != plan.key()
    with pytest.raises(ConfigError, match="finetune_temperature must be a finite number > 0"):
        RecoveryConfig(finetune_temperature=0)


def test_augmix_fine_tuning_keeps_the_compression_is_seeded_and_leaves_the_global_generator_alone(tiny, calibration):
    from moo_compress.compress.recovery import augmenter

    steps = {"finetune_steps": 4, "finetune_batch_size": 16, "finetune_lr": 1e-2}
    compression = {"prune": PruneConfig(0.5), "cluster": ClusterConfig(8)}
    plain = compress(tiny, CompressionPlan(**compression, recovery=RecoveryConfig(**steps)), calibration)
    plan = CompressionPlan(**compression, recovery=RecoveryConfig(**steps, finetune_augment="augmix"))
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    mixed = compress(tiny, plan, calibration)
    assert torch.equal(torch.rand(3), before)  # AugMix ran under its own seeded generator
    again = compress(tiny, plan, calibration)
    pruned = compress(tiny, CompressionPlan(**compression))
    assert any(not np.array_equal(weight(mixed, n), weight(plain, n)) for n in LAYERS)  # it trained on other images
    for n in LAYERS:
        np.testing.assert_array_equal(weight(again, n), weight(mixed, n))
        w0, w1 = weight(pruned, n), weight(mixed, n)
        assert np.all(w1[w0 == 0] == 0) and np.unique(w1[w1 != 0]).size <= 8
    image = torch.from_numpy(calibration.images[0]).permute(2, 0, 1)
    first, second = augmenter("augmix", 0, 0), augmenter("augmix", 0, 0)
    out = first(image)
    assert out.dtype == torch.uint8 and out.shape == image.shape and not torch.equal(out, image)
    assert torch.equal(second(image), out) and augmenter(None, 0, 0) is None
    with pytest.raises(ConfigError, match="finetune_augment must be one of"):
        RecoveryConfig(finetune_augment="cutmix")


def test_distillation_alone_with_frozen_batch_norm_keeps_the_teachers_copy_near_the_teacher(tiny, calibration):
    # the teacher's own copy starts with nothing to learn (loss 0); in eval mode it stays within Adam's rounding
    # noise of the teacher, while training mode (batch statistics, dropout) pulls it ten times further away
    still = RecoveryConfig(finetune_steps=5, finetune_batch_size=16, finetune_lr=1e-2, finetune_distill=1.0,
                           finetune_label_weight=0.0, finetune_bn="frozen")
    assert still.level == "pkd5f"
    x = calibration.tensor(slice(0, 64))
    frozen = _kl_to(tiny, compress(tiny, CompressionPlan(recovery=still), calibration), x)
    moving = _kl_to(tiny, compress(tiny, CompressionPlan(recovery=dataclasses.replace(still, finetune_bn="batch")),
                                   calibration), x)
    assert frozen < moving / 5
    # after re-estimation (which fine-tuning then runs on), it is drawn back towards the teacher
    x = calibration.tensor(slice(0, 64))
    bn = CompressionPlan(recovery=RecoveryConfig(bn_images=32))
    drawn = CompressionPlan(recovery=dataclasses.replace(still, bn_images=32))
    assert _kl_to(tiny, compress(tiny, drawn, calibration), x) < _kl_to(tiny, compress(tiny, bn, calibration), x)
    # and a compressed plan under it learns, keeping its compression
    compression = {"prune": PruneConfig(0.7), "cluster": ClusterConfig(4)}
    before = compress(tiny, CompressionPlan(**compression), calibration)
    after = compress(tiny, CompressionPlan(**compression, recovery=still), calibration)
    assert any(not np.array_equal(weight(before, n), weight(after, n)) for n in LAYERS)
    for n in LAYERS:
        w0, w1 = weight(before, n), weight(after, n)
        assert np.all(w1[w0 == 0] == 0) and np.unique(w1[w1 != 0]).size <= 4
    with pytest.raises(ConfigError, match="finetune_bn must be one of"):
        RecoveryConfig(finetune_bn="train")

