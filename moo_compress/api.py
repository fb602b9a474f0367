"""``moo_compress.optimize(model, data, ...)``: the search as one Python call, in the manner of pymoo's ``minimize``.

>>> import moo_compress
>>> result = moo_compress.optimize("resnet20", "cifar10", quick=True)        # doctest: +SKIP
>>> result.pareto[["label", "clean_accuracy", "compression_ratio"]]           # doctest: +SKIP
>>> result.save("outputs/resnet20-quick")                                    # doctest: +SKIP
>>> from moo_compress.search import ExecutionSettings, FidelitySettings
>>> result = moo_compress.optimize("resnet20", fidelity=FidelitySettings(eval_images=50, final_images=0),
...                                execution=ExecutionSettings(device="cpu", workers=2))  # doctest: +SKIP
>>> from pymoo.algorithms.moo.sms import SMSEMOA
>>> result = moo_compress.optimize("resnet20", quick=True, algorithm=SMSEMOA(pop_size=6))  # doctest: +SKIP

Nothing is written to the working directory unless asked (``out=`` or :meth:`Result.save`); the
evaluation cache (``execution.cache_dir``, default ``$MOO_COMPRESS_CACHE``) is used as by the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moo_compress import runfolder
from moo_compress.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from moo_compress.search.settings import ExecutionSettings, FidelitySettings

__all__ = ["Result", "optimize"]


@dataclass
class Result:
    """What a search returns: its tables as pandas objects, and its run folder on demand.

    Attributes:
        evaluations: One row per distinct plan measured during the search (genes, rung, metrics).
        pareto: The selected Pareto set with its search and report-split metrics and intervals.
        recommendations: Knee points and picks (one dict each, with their intervals).
        history: One row per generation (evaluations, images spent, hypervolume, time).
        reference: Report-split metrics of the reference (the uncompressed model after the space's recovery).
        original: Report-split metrics of the original model.
        seconds: Wall time of the search.
        out_dir: Where the run folder was written (None until :meth:`save` or ``out=``).
    """

    evaluations: pd.DataFrame
    pareto: pd.DataFrame
    recommendations: list[dict[str, Any]]
    history: pd.DataFrame
    reference: dict[str, Any]
    original: dict[str, Any]
    seconds: float
    out_dir: Path | None = None
    _files: dict[str, bytes] = field(default_factory=dict, repr=False)

    def save(self, directory: str | os.PathLike[str], *, figures: bool = True) -> Path:
        """Writes the run folder (the tables, ``knees.json``, ``config.yaml``) and, with ``figures``,
        renders ``summary.md`` and the figures into it (:func:`moo_compress.report.render_run`).

        Raises:
            ConfigError: if the folder cannot be written (the message names it).
        """
        root = Path(directory)
        try:
            for name, data in self._files.items():
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        except OSError as exc:
            raise ConfigError(f"cannot write the run folder {root}: {exc.strerror or exc}; pass a writable "
                              "folder") from None
        if figures:
            from moo_compress.report import render_run  # the report is loaded only when figures are asked for

            render_run(root)
        self.out_dir = root
        return root


def _print(line: str) -> None:
    print(line, flush=True)


def _model_source(model: str | nn.Module, cache_dir: str | None) -> tuple[str, bool]:
    """The model as a name or source string, and whether it is an in-memory module saved for the run."""
    if isinstance(model, str):
        return model, False
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be an nn.Module, a registry name or a source such as "
                          f"'path/to/file.py:factory'; got {type(model).__name__}")
    import torch

    from moo_compress import paths

    buffer = io.BytesIO()
    torch.save(model, buffer)
    data = buffer.getvalue()
    path = paths.cache_dir(cache_dir) / "sources" / f"module-{hashlib.sha256(data).hexdigest()[:16]}.pkl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return f"pickle:{path}", True


def _array_folder(data: Any, cache_dir: str | None) -> str:
    """An ImageFolder tree in the cache holding in-memory arrays ``{"test": (images, labels), "train":
    (images, labels)}``; written once per content."""
    import numpy as np
    from PIL import Image

    from moo_compress import paths

    if not isinstance(data, dict) or set(data) != {"test", "train"}:
        raise ConfigError("data as arrays is {'test': (images, labels), 'train': (images, labels)}: test images to "
                          "measure on and training images for the recovery's calibration; got "
                          f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    splits = dict(data)
    arrays = {}
    digest = hashlib.sha256()
    for split, pair in sorted(splits.items()):
        try:
            images, labels = (np.asarray(a) for a in pair)
        except (TypeError, ValueError):
            raise ConfigError(f"data[{split!r}] must be a pair (images, labels)") from None
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(labels) != len(images):
            raise ConfigError(f"data[{split!r}]: images must be uint8 (N, H, W, 3) with N labels; got "
                              f"{images.dtype} {images.shape} and {len(labels)} labels")
        arrays[split] = (images, labels.astype(np.int64))
        digest.update(split.encode() + images.tobytes() + labels.astype(np.int64).tobytes())
    root = paths.cache_dir(cache_dir) / "array-data" / digest.hexdigest()[:16]
    if not (root / "done").is_file():
        classes = int(max(int(labels.max()) for _, labels in arrays.values())) + 1
        for split, (images, labels) in arrays.items():
            for c in range(classes):
                (root / split / f"class{c:04d}").mkdir(parents=True, exist_ok=True)
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                Image.fromarray(image).save(root / split / f"class{int(label):04d}" / f"{i:06d}.png")
        (root / "done").write_text("")
    return str(root)


def _dataset(data: Any, cache: str | None) -> tuple[str, str | None]:
    """``(dataset, data_root)`` of ``optimize``'s ``data``: a name, a folder, or arrays written as a folder."""
    if isinstance(data, (tuple, list, dict)):
        data = _array_folder(data, cache)
    data_text = str(data)
    if Path(data_text).expanduser().is_dir():
        return "imagefolder", str(Path(data_text).expanduser())
    if os.sep in data_text or data_text.startswith("."):
        raise ConfigError(f"data folder {data_text} does not exist; pass an ImageFolder tree (train/<class>/*, "
                          "test/<class>/*) or a dataset name (cifar10, cifar100)")
    return data_text, None


def _budget(budget: int | str | None) -> tuple[float | None, int | None]:
    """``(time_budget, budget_images)`` of ``optimize``'s ``budget``."""
    if budget is None:
        return None, None
    from moo_compress.search.settings import parse_budget

    try:
        kind, value = parse_budget(budget)
    except ConfigError as exc:
        raise ConfigError(f"budget: {exc}") from None
    return (value, None) if kind == "seconds" else (None, int(value))


def optimize(
    model: str | nn.Module,
    data: str | os.PathLike[str] | dict[str, tuple[Any, Any]] = "cifar10",
    space: str | os.PathLike[str] | None = None,
    *,
    weights: str | os.PathLike[str] | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    input_size: int | None = None,
    budget: int | str | None = None,
    seed: int = 0,
    pop_size: int | None = None,
    generations: int | None = None,
    fidelity: FidelitySettings | None = None,
    execution: ExecutionSettings | None = None,
    quick: bool = False,
    algorithm: Any = None,
    out: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    progress: Callable[[Any], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Result:
    """Searches compression plans of ``model`` on ``data`` (docs/search.md says what is measured).

    Args:
        model: An ``nn.Module`` (its input normalisation from its own metadata or ``mean``/``std``), a
            registry name (``vgg19``), ``torchvision:<name>``, ``timm:<name>``, ``path/to/file.py:factory``
            or ``pkg.module:factory``.
        data: A dataset name (``cifar10``, ``cifar100``), an ImageFolder folder of your own
            (``train/<class>/*`` and ``test/<class>/*``; any number of classes), or arrays as ``(images,
            labels)`` pairs of uint8 (N, H, W, 3) images: ``{"test": (...), "train": (...)}``, the training
            images for the recovery's calibration.
        space: A search space name (``search_spaces/<name>.yaml``) or path; default: the model family's.
        weights: A checkpoint to load into the model (default: its own weights, or the zoo's).
        mean: Input normalisation mean on [0, 1] pixels, where the model carries none.
        std: Input normalisation standard deviation, likewise.
        input_size: Input pixels (square) where the model carries none; images are resized to it, whole.
        budget: Images (an int) or wall time (``"25m"``, ``"1500s"``) after which the search stops.
        seed: Seed of the algorithm.
        pop_size: Population (default: the space's).
        generations: Generations (default: the space's, or until the budget is spent).
        fidelity: Which images measure the plans, and how many
            (:class:`~moo_compress.search.settings.FidelitySettings`: racing ``rungs`` or a fixed
            ``eval_images``, ``select_images``, ``final_images``, split and subset seeds); default: the
            space's fidelity.
        execution: Where and how the evaluations run
            (:class:`~moo_compress.search.settings.ExecutionSettings`: ``device``, ``precision``,
            ``workers``, ``threads``, ``batch_size``, ``scheduler``, ``cache_dir``: the evaluation cache,
            default ``$MOO_COMPRESS_CACHE``); default: all automatic, and one worker for an in-memory
            ``nn.Module`` (whose class worker processes may not be able to import) unless ``workers`` is given.
        quick: A small search of about a minute.
        algorithm: ``"nsga2"`` (default: the space's), ``"nsga3"``, ``"grid"``, or any pymoo multi-objective
            algorithm object (its genes are rounded to integers; the surrogate steers NSGA-II and NSGA-III only).
        out: Also write the run folder there (resumable, as the command line's).
        verbose: Print messages and per-plan lines as the command line does.
        progress: Called with each plan's :class:`~moo_compress.search.progress.ProgressEvent` (e.g.
            :class:`~moo_compress.search.progress.ProgressBar` in a notebook).
        log: Called with each message and per-plan line instead of printing (the older form of ``progress``).

    Returns:
        A :class:`Result`.

    Raises:
        MooCompressError: for bad arguments, data or models; the message names the problem and the fix.
    """
    from moo_compress.search.run import run_search
    from moo_compress.search.settings import (
        AlgorithmSettings,
        ExecutionSettings,
        FidelitySettings,
        OutputSettings,
        SearchSettings,
        TargetSettings,
    )

    for name, value, kind in (("fidelity", fidelity, FidelitySettings), ("execution", execution, ExecutionSettings)):
        if value is not None and not isinstance(value, kind):
            raise ConfigError(f"{name} must be a {kind.__name__} (from moo_compress.search import {kind.__name__}), "
                              f"got {type(value).__name__}")
    execution = execution or ExecutionSettings()
    cache = execution.cache_dir
    arch, in_memory = _model_source(model, cache)
    if in_memory and execution.workers is None:
        execution = dataclasses.replace(execution, workers=1)
    dataset, data_root = _dataset(data, cache)
    time_budget, budget_images = _budget(budget)
    scratch = None if out is not None else Path(tempfile.mkdtemp(prefix="moo_compress-run-"))
    settings = SearchSettings(
        TargetSettings(arch, dataset=dataset, data_root=data_root, weights=None if weights is None else str(weights),
                       mean=mean, std=std, input_size=input_size, space=None if space is None else str(space)),
        algorithm=AlgorithmSettings(pop_size=pop_size, generations=generations, seed=seed,
                                    budget_images=budget_images, time_budget=time_budget),
        fidelity=fidelity or FidelitySettings(),
        execution=execution,
        output=OutputSettings(out=str(out if out is not None else scratch / "run")),
        quick=quick,
    )
    if log is None and verbose:
        log = _print
    try:
        render = None
        if out is not None:
            from moo_compress.report import render_run

            render = render_run
        run = run_search(settings, algorithm=algorithm, progress=progress, log=log, render=render)
        folder = Path(run.out_dir)
        files = {name: (folder / name).read_bytes() for name in runfolder.REQUIRED if (folder / name).is_file()}
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    baseline = run.baseline or {}
    reference = baseline.get("final") or baseline.get("selection") or baseline.get("screening") or {}
    return Result(evaluations=run.evaluations, pareto=run.pareto, recommendations=run.recommendations,
                  history=run.history, reference=dict(reference), original=dict(baseline.get("original") or {}),
                  seconds=run.seconds,
                  out_dir=None if out is None else Path(out), _files=files)
