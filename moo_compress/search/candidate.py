"""Evaluating one compression plan: compress, measure size, score clean accuracy and robustness.

This is the unit of work the search farms out (serially, to local processes or to a Dask cluster).
A task carries only an :class:`EvaluationSpec` (names, paths, hashes, fidelity) and a plan; the heavy
things — the pretrained model, the clean and corrupted test images, the calibration images — are
loaded once per process by :func:`load_resources` and kept for later tasks.

The record a task returns is also written to the evaluation cache the moment it is known, by the
process that computed it, so nothing is lost if the search is interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moo_compress import __version__
from moo_compress.compress import CalibrationData, CompressionPlan, compress, model_fingerprint
from moo_compress.compress.size import size_report
from moo_compress.data import (
    ArrayDataset,
    balanced_order,
    dataset_labels,
    load_dataset,
    split_indices,
    stratified_indices,
)
from moo_compress.data.cifar_c import CorruptedSet, find_release, load_corrupted
from moo_compress.data.resize import DEFAULT_CROP_PCT, Sizing, resize_images
from moo_compress.errors import ConfigError, DataFormatError
from moo_compress.evaluation import Evaluator
from moo_compress.evaluation.runtime import resolve_device
from moo_compress.evaluation.stats import pack_bits
from moo_compress.fileio import atomic_open, stable_hash
from moo_compress.models import PretrainedModel, load_pretrained
from moo_compress.provenance import numeric_versions, source_fingerprint
from moo_compress.search.cache import EvaluationCache

__all__ = ["EVALUATION_VERSION", "EvaluationSpec", "Resources", "load_resources", "compressed_model", "split_pool",
           "evaluate_plan", "evaluate_and_store", "corruption_key", "split_order", "model_path",
           "discard_models", "model_sizing"]

#: Bumped whenever a change alters the numbers an evaluation produces (invalidates cached results).
EVALUATION_VERSION = 4  # 2: batch norms folded; 3: keys hash source, versions, device; 4: per-image outcomes


def corruption_key(corruption: str, severity: int) -> str:
    """The string form of a (corruption, severity) pair used in records and CSV columns."""
    return f"{corruption}/{severity}"


@dataclass(frozen=True)
class EvaluationSpec:
    """Everything needed to evaluate plans, by name, path and hash (never a loaded object).

    Attributes:
        arch: Architecture name.
        dataset: Dataset name.
        weights_path: Checkpoint file.
        weights_sha256: Its SHA-256 (checked when a process loads it).
        data_root: The dataset's folder, or None to resolve it as the CLI does.
        corruptions: Corruptions evaluated.
        severities: Severities evaluated.
        n_per_class: Fidelity: images per class of a stratified subset, for clean accuracy and for
            every (corruption, severity); None for the whole split (or the ``window``).
        seed: Seed of the image subsets (drawn inside the split) and of generated corruptions.
        release_dir: A CIFAR-C release folder, or None to search ``$MOO_COMPRESS_DATA`` / generate.
        calibration_images: Training images available to recovery steps (0 = none).
        precision: ``fp32`` or ``bf16``.
        device: ``cpu``, ``cuda`` or ``auto``.
        batch_size: Images per forward pass (None: 64 per CPU thread, 256 on CUDA).
        cache_dir: Cache root (generated corruptions, evaluation records).
        split: Part of the test set the images come from: ``search`` (screening and selection),
            ``report`` (final numbers only) or ``all`` (see :func:`~moo_compress.data.split_indices`).
        split_seed: Seed of the search/report split.
        clean_whole_split: Measure clean accuracy on every image of the split (corrupted images still
            follow ``n_per_class``): clean images are cheap next to the corruption cells.
        window: ``(start, stop)``: evaluate the images at these positions of the split's fixed,
            class-interleaved order (:func:`~moo_compress.data.balanced_order` with ``seed``) instead
            of a stratified subset. Windows ``[0, a)``, ``[a, b)`` ... are the nested fidelity rungs of a
            race: a plan measured on ``[0, a)`` is extended to ``b`` images by evaluating ``[a, b)`` only.
            Needs ``n_per_class=None``.
        clean_multiple: With a window ``[a, b)``, clean accuracy is measured on positions
            ``[m a, m b)`` of the same order (``m`` this multiple): clean images are cheap next to the
            corruption cells, and the joined windows ``[0, b)`` / ``[0, m b)`` still start with the same
            images, so clean and corrupted outcomes of an image stay aligned.
        keep_models: Keep each compressed model in the cache (``<cache>/models``) so that the plan's next
            window loads it instead of compressing again (batch-norm re-estimation included); the racer
            discards a model when its plan stops or reaches the top rung, the search at its end. Not part
            of the cache context: a stored model is bit-identical to a recompressed one.
        threads: torch CPU threads of one evaluation (None: leave torch's setting). Batch-norm
            re-estimation and bf16 kernels reduce in a thread-dependent order, so the thread count is
            part of the cache context and fixed for every execution mode.
        clean_fingerprint: Fingerprint of the clean subset, filled by :meth:`resolved`.
        corrupted_fingerprint: Fingerprint of the corrupted set, filled by :meth:`resolved`.
        calibration_fingerprint: Fingerprint of the calibration images, filled by :meth:`resolved`.
    """

    arch: str
    dataset: str
    weights_path: str
    weights_sha256: str
    data_root: str | None
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    n_per_class: int | None
    seed: int = 0
    release_dir: str | None = None
    calibration_images: int = 0
    precision: str = "fp32"
    device: str = "cpu"
    batch_size: int | None = None
    cache_dir: str | None = None
    split: str = "all"
    split_seed: int = 0
    clean_whole_split: bool = False
    threads: int | None = 1
    window: tuple[int, int] | None = None
    clean_multiple: int = 1
    keep_models: bool = False
    corruption_params: str | None = None
    clean_fingerprint: str = ""
    corrupted_fingerprint: str = ""
    calibration_fingerprint: str = ""

    def with_fidelity(self, n_per_class: int | None, **changes: Any) -> EvaluationSpec:
        """The same spec at another fidelity (and other ``changes``); fingerprints are recomputed by
        :meth:`resolved`."""
        return dataclasses.replace(self, n_per_class=n_per_class, clean_fingerprint="", corrupted_fingerprint="",
                                   **changes)

    def with_window(self, start: int, stop: int) -> EvaluationSpec:
        """The same spec on positions ``[start, stop)`` of the split's fixed order (see ``window``)."""
        return dataclasses.replace(self, n_per_class=None, window=(int(start), int(stop)), clean_fingerprint="",
                                   corrupted_fingerprint="")

    def resolved(self) -> EvaluationSpec:
        """The spec with its data fingerprints filled in (loads the data of this process once)."""
        res = load_resources(self)
        return dataclasses.replace(
            self,
            clean_fingerprint=res.clean.fingerprint,
            corrupted_fingerprint=res.corrupted.fingerprint,
            calibration_fingerprint=res.calibration.fingerprint() if res.calibration is not None else "",
        )

    def context(self) -> dict[str, Any]:
        """What determines an evaluation's numbers besides the plan.

        The checkpoint, data and calibration fingerprints, fidelity and precision; the versions of the
        package, torch and numpy, a fingerprint of the source code that computes the numbers
        (:func:`~moo_compress.provenance.source_fingerprint`), the device type (kernels differ
        between CPU and CUDA) and, on CPU, the threads of an evaluation. The batch size does not change
        the numbers and is left out.
        """
        if not self.clean_fingerprint:
            raise ValueError("call EvaluationSpec.resolved() before using it as a cache context")
        return {
            "version": EVALUATION_VERSION,
            "source": source_fingerprint(),
            "versions": numeric_versions(),
            "device_type": resolve_device(self.device).type,
            "weights_sha256": self.weights_sha256,
            "dataset": self.dataset,
            "clean": self.clean_fingerprint,
            "corrupted": self.corrupted_fingerprint,
            "calibration": self.calibration_fingerprint,
            "n_per_class": self.n_per_class,
            "window": list(self.window) if self.window is not None else None,
            "clean_multiple": self.clean_multiple if self.window is not None else None,
            "precision": self.precision,
            "threads": self.threads if resolve_device(self.device).type == "cpu" else None,
        }

    def context_key(self) -> str:
        """Hash of :meth:`context`: the cache folder of this spec's records."""
        return stable_hash(self.context())

    def identity(self) -> tuple[Any, ...]:
        """What :func:`load_resources` memoises on (fingerprints excluded: they are derived)."""
        return (self.arch, self.dataset, self.weights_path, self.weights_sha256, self.data_root, self.corruptions,
                self.severities, self.n_per_class, self.seed, self.release_dir, self.calibration_images,
                self.cache_dir, self.split, self.split_seed, self.clean_whole_split, self.window, self.clean_multiple,
                self.corruption_params)


@dataclass(frozen=True, eq=False)
class Resources:
    """The heavy objects of one spec, loaded once per process."""

    pretrained: PretrainedModel
    clean: ArrayDataset
    corrupted: CorruptedSet
    calibration: CalibrationData | None


_RESOURCES: dict[tuple[Any, ...], Resources] = {}


def load_resources(spec: EvaluationSpec) -> Resources:
    """Loads (once per process) the model, clean subset, corrupted set and calibration images of ``spec``.

    Raises:
        DataFormatError: if a file changed since the spec was made (checkpoint hash or data fingerprint).
    """
    key = spec.identity()
    if key in _RESOURCES:
        return _RESOURCES[key]
    pretrained = load_pretrained(spec.arch, spec.dataset, weights=spec.weights_path, download=False)
    if pretrained.weights_sha256 != spec.weights_sha256:
        raise DataFormatError(f"{spec.weights_path} changed since the search started (SHA-256 differs); "
                              "restart the search")
    sizing = model_sizing(pretrained)
    test = load_dataset(spec.dataset, "test", data_root=spec.data_root, cache_dir=spec.cache_dir, sizing=sizing)
    pool = split_indices(test.labels, spec.split, seed=spec.split_seed)
    clean_window = None
    if spec.window is not None:
        start, stop = _check_window(spec, len(pool))
        order = pool[split_order(spec, test.labels, pool)]
        chosen = order[start:stop]
        clean_window = order[spec.clean_multiple * start:spec.clean_multiple * stop]
    elif spec.n_per_class is None:
        chosen = pool
    else:
        chosen = pool[stratified_indices(test.labels[pool], spec.n_per_class, seed=spec.seed)]
    clean_indices = pool if spec.clean_whole_split else (chosen if clean_window is None else clean_window)
    clean = test if len(clean_indices) == len(test) else test.subset(clean_indices)
    corrupted = _corrupted(spec, test, chosen, sizing)
    calibration = None
    if spec.calibration_images > 0:
        train = load_dataset(spec.dataset, "train", data_root=spec.data_root, cache_dir=spec.cache_dir,
                             sizing=sizing)
        per_class = -(-spec.calibration_images // train.num_classes)  # at least calibration_images in all
        calibration = CalibrationData.from_dataset(train, mean=pretrained.mean, std=pretrained.std,
                                                   n=per_class * train.num_classes, seed=spec.seed,
                                                   precision=spec.precision)
    for name, expected, found in (("clean test subset", spec.clean_fingerprint, clean.fingerprint),
                                  ("corrupted set", spec.corrupted_fingerprint, corrupted.fingerprint)):
        if expected and expected != found:
            raise DataFormatError(f"the {name} differs from the one the search started with; restart the search")
    if sizing is not None:  # e.g. CIFAR upsampled whole to a 224-pixel model's input (a release: after corrupting)
        size = sizing.size
        clean = dataclasses.replace(clean, images=resize_images(clean.images, size))
        corrupted = dataclasses.replace(corrupted, _images={k: resize_images(v, size)
                                                            for k, v in corrupted._images.items()})
        if calibration is not None:
            calibration = dataclasses.replace(calibration, images=resize_images(calibration.images, size))
    resources = Resources(pretrained, clean, corrupted, calibration)
    _RESOURCES[key] = resources
    return resources


def _corrupted(spec: EvaluationSpec, test: ArrayDataset, chosen: np.ndarray, sizing: Sizing | None) -> CorruptedSet:
    """The corrupted images of ``chosen``, at the size the model sees them.

    A release (CIFAR-10-C, ImageNet-C folders) is read at its own size and resized afterwards with the
    clean images. Generated corruptions are applied at the model's input size, after the images are
    resized to it, with the parameter set of that size (:mod:`moo_compress.data.corruptions.params`):
    CIFAR upsampled to a 224-pixel model gets the ImageNet-C parameters.
    """
    if sizing is None or tuple(test.images.shape[1:3]) == tuple(sizing.size) or \
            find_release(spec.dataset, spec.release_dir) is not None:
        return load_corrupted(test, corruptions=spec.corruptions, severities=spec.severities, seed=spec.seed,
                              release_dir=spec.release_dir, cache_dir=spec.cache_dir,
                              indices=None if len(chosen) == len(test) else chosen, params=spec.corruption_params)
    source = test.subset(chosen)
    source = dataclasses.replace(source, images=resize_images(source.images, sizing.size),
                                 fingerprint=stable_hash([source.fingerprint, "resized", list(sizing.size)]))
    return load_corrupted(source, corruptions=spec.corruptions, severities=spec.severities, seed=spec.seed,
                          cache_dir=spec.cache_dir, params=spec.corruption_params)


def model_sizing(pretrained: PretrainedModel) -> Sizing | None:
    """How images are brought to ``pretrained``'s input: its size, crop and interpolation (None: a model
    that names no input size takes the data as it is)."""
    if pretrained.input_size is None:
        return None
    return Sizing(size=(int(pretrained.input_size[1]), int(pretrained.input_size[2])),
                  crop_pct=pretrained.crop_pct or DEFAULT_CROP_PCT,
                  interpolation=pretrained.interpolation or "bilinear")


def _check_window(spec: EvaluationSpec, size: int) -> tuple[int, int]:
    start, stop = spec.window  # type: ignore[misc]
    if spec.n_per_class is not None:
        raise ConfigError("an evaluation spec takes either a window or n_per_class, not both")
    if not 0 <= start < stop <= size:
        raise ConfigError(f"image window [{start}, {stop}) does not fit the {size} images of the {spec.split} "
                          f"split; use 0 <= start < stop <= {size} (fewer images per rung)")
    if isinstance(spec.clean_multiple, bool) or not isinstance(spec.clean_multiple, int) or spec.clean_multiple < 1 \
            or spec.clean_multiple * stop > size:
        raise ConfigError(f"clean_multiple {spec.clean_multiple!r} x {stop} images exceeds the {size} images of the "
                          f"{spec.split} split; use a positive integer of at most {size // stop}")
    return start, stop


def model_path(spec: EvaluationSpec, plan_key: str) -> Path | None:
    """Where a plan's compressed model is kept between windows (None unless ``spec.keep_models``)."""
    if not spec.keep_models or spec.cache_dir is None:
        return None
    images = ("clean", "corrupted", "n_per_class", "window", "clean_multiple")  # which test images: not the model
    context = {k: v for k, v in spec.context().items() if k not in images}
    return Path(spec.cache_dir) / "models" / stable_hash(context) / f"{plan_key}.pt"


def discard_models(spec: EvaluationSpec, plan_keys: list[str] | None = None) -> None:
    """Deletes the kept models of ``plan_keys`` (all of the spec's models when None)."""
    if not spec.keep_models or spec.cache_dir is None:
        return
    if plan_keys is None:
        folder = model_path(spec, "x")
        if folder is not None:
            shutil.rmtree(folder.parent, ignore_errors=True)
        return
    for key in plan_keys:
        path = model_path(spec, key)
        if path is not None:
            path.unlink(missing_ok=True)


def compressed_model(spec: EvaluationSpec, res: Resources, plan: CompressionPlan) -> torch.nn.Module:
    """The compressed model of ``plan``: loaded when kept by an earlier window, else compressed (and kept)."""
    path = model_path(spec, plan.key())
    if path is not None and path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a truncated or stale file: compress again
            path.unlink(missing_ok=True)
    model = compress(res.pretrained.model, plan, calibration=res.calibration)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:
            torch.save(model, f)
    return model


def split_order(spec: EvaluationSpec, labels: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Positions in ``pool`` (the split) in the fixed class-interleaved order of the spec's windows."""
    return balanced_order(labels[pool], len(pool), seed=spec.seed)


def split_pool(spec: EvaluationSpec) -> np.ndarray:
    """Positions in the test set of every image of the spec's split (its subsets are drawn from these)."""
    labels = dataset_labels(spec.dataset, "test", data_root=spec.data_root, cache_dir=spec.cache_dir)
    return split_indices(labels, spec.split, seed=spec.split_seed)


#: Record fields that depend only on the compressed model, copied from an identical model's record.
MODEL_FIELDS = ("clean_accuracy", "corruption_accuracy", "compression_ratio", "compressed_bits", "dense_bits",
                "n_clean", "n_corrupted", "clean_correct", "corruption_correct")


@contextlib.contextmanager
def _threads(spec: EvaluationSpec) -> Iterator[None]:
    """Runs the block with the spec's torch threads (on CPU), restoring the previous setting after."""
    before = torch.get_num_threads()
    if spec.threads is not None and resolve_device(spec.device).type == "cpu" and spec.threads != before:
        torch.set_num_threads(spec.threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def evaluate_plan(spec: EvaluationSpec, plan: CompressionPlan, *,
                  known: Callable[[str], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Compresses the pretrained model with ``plan`` and scores it; never raises for a bad candidate.

    Args:
        spec: What to evaluate on.
        plan: The plan.
        known: Looks up the record of an earlier plan that produced the same model (by
            :func:`~moo_compress.compress.model_fingerprint`); when one is found its numbers (and
            size) are taken over and the record names it in ``duplicate_of``, without evaluating again.

    Returns:
        A JSON-able record: ``status`` (``ok`` or ``failed``), ``error``, ``plan`` (canonical),
        ``plan_resolved`` (every field), ``plan_key``, ``label``, ``weights_fingerprint``,
        ``duplicate_of``, ``clean_accuracy``, ``corruption_accuracy`` (``"name/severity"`` ->
        accuracy), ``clean_correct`` and ``corruption_correct`` (per-image outcomes in the order of the
        spec's images, packed by :func:`~moo_compress.evaluation.stats.pack_bits`), ``compression_ratio``,
        ``compressed_bits``, ``dense_bits``, timings and provenance.
    """
    res = load_resources(spec)  # a missing or changed file stops the search: not the candidate's fault
    start = time.perf_counter()
    record: dict[str, Any] = {
        "status": "ok",
        "error": None,
        "plan": plan.to_dict(),
        "plan_resolved": plan.to_dict(defaults=True),
        "plan_key": plan.key(),
        "label": plan.label(),
        "n_per_class": spec.n_per_class,
        "window": list(spec.window) if spec.window is not None else None,
        "precision": spec.precision,
        "moo_compress_version": __version__,
    }
    with _threads(spec):
        _evaluate_into(record, spec, res, plan, known)
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def _evaluate_into(record: dict[str, Any], spec: EvaluationSpec, res: Resources, plan: CompressionPlan,
                   known: Callable[[str], dict[str, Any] | None] | None) -> None:
    try:
        t0 = time.perf_counter()
        model = compressed_model(spec, res, plan)
        compress_seconds = time.perf_counter() - t0
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise FloatingPointError("the compressed model has non-finite weights")
        record["weights_fingerprint"] = model_fingerprint(model)
        twin = known(record["weights_fingerprint"]) if known is not None else None
        if twin is not None and twin.get("status") == "ok" and twin.get("plan_key") != record["plan_key"]:
            record.update({k: twin[k] for k in MODEL_FIELDS if k in twin}, duplicate_of=twin["plan_key"],
                          duplicate_label=twin.get("label"), compress_seconds=round(compress_seconds, 3))
            return
        report = size_report(model)
        evaluator = Evaluator(model, mean=res.pretrained.mean, std=res.pretrained.std, device=spec.device,
                              precision=spec.precision, batch_size=spec.batch_size)
        clean_correct = evaluator.predict(res.clean.images) == res.clean.labels
        clean_accuracy = float(np.mean(clean_correct))
        outcomes = {corruption_key(c, int(s)): evaluator.predict(images) == res.corrupted.labels
                    for c, s, images in res.corrupted}
        accuracies = {k: float(np.mean(v)) for k, v in outcomes.items()}
        if not math.isfinite(clean_accuracy) or not all(map(math.isfinite, accuracies.values())):
            raise FloatingPointError("accuracy is not finite")
        record.update(
            clean_accuracy=float(clean_accuracy),
            corruption_accuracy=accuracies,
            clean_correct=pack_bits(clean_correct),
            corruption_correct={k: pack_bits(v) for k, v in outcomes.items()},
            compression_ratio=float(report.compression_ratio),
            compressed_bits=int(report.compressed_bits),
            dense_bits=int(report.dense_bits),
            compress_seconds=round(compress_seconds, 3),
            n_clean=len(res.clean),
            n_corrupted=len(res.corrupted) * len(res.corrupted.keys()),
        )
    except Exception as exc:  # a failed candidate is data, not a crash of the search
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=6))


def evaluate_and_store(spec: EvaluationSpec, plan_dict: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point: evaluates a plan given as a dict and writes its record to the cache at once."""
    plan = CompressionPlan.from_dict(plan_dict)
    context = spec.context_key()
    cache = EvaluationCache(spec.cache_dir) if spec.cache_dir is not None else None
    known = None if cache is None else (lambda fingerprint: cache.find_weights(context, fingerprint))
    record = evaluate_plan(spec, plan, known=known)
    record["context_key"] = context
    if cache is not None:
        cache.put_context(context, spec.context())
        cache.put(context, plan.key(), record)
        if record["status"] == "ok" and not record.get("duplicate_of"):
            cache.put_weights(context, record["weights_fingerprint"], plan.key())
    return record
