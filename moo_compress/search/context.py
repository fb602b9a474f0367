"""A search's context, resolved once: settings, space, encoding, fidelity, evaluation specs, run folder.

Every default of a run is decided here (from the settings, then the space), so the stages that follow
read one :class:`SearchContext` instead of deciding again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from moo_compress import paths
from moo_compress.compress import CompressionPlan, RecoveryConfig
from moo_compress.compress.calibration import calibration_size
from moo_compress.data import dataset_classes, dataset_labels
from moo_compress.data.corruptions import resolve_corruptions
from moo_compress.errors import ConfigError
from moo_compress.models import checkpoint_sha256, materialize_source, model_defaults, resolve_weights
from moo_compress.models.sources import is_source, source_slug
from moo_compress.search.candidate import EvaluationSpec, split_pool
from moo_compress.search.executors import ExecutorConfig, default_workers
from moo_compress.search.fidelity import Fidelity, Promotion
from moo_compress.search.settings import HELD_OUT_IMAGES, SearchSettings
from moo_compress.search.space import Encoding, SearchSpace, default_space, load_space

__all__ = ["SearchContext", "resolve_context", "build_spec", "space_spec", "needs_calibration", "resolve_fidelity",
           "UNTIL_BUDGET", "MIN_CALIBRATION_IMAGES"]

logger = logging.getLogger("moo_compress.search")

#: Generations of a search with a budget and no ``--generations``: it stops when the budget is spent.
UNTIL_BUDGET = 10**6
#: Fewest training images a space's calibration may fall back to when the data holds fewer than it asks
#: for (batch-norm statistics from fewer images are too noisy to stand in for the space's recovery).
MIN_CALIBRATION_IMAGES = 64


def needs_calibration(space: SearchSpace) -> bool:
    """Whether the space's plans read calibration images (recovery or activation quantization)."""
    return space.recovery.enabled or "activation_bits" in space.quantize or any(
        g.kind == "activation_bits" and any(c is not None for c in g.choices) for g in space.genes)


def _promoted_pool(space: SearchSpace) -> str:
    if not space.promotion.enabled:
        return ""
    return f", promote.recovery.finetune_images={space.promotion.recovery.finetune_images}"  # type: ignore[union-attr]


def _corruption_names(space: SearchSpace) -> tuple[str, ...]:
    return tuple(resolve_corruptions(space.corruptions if isinstance(space.corruptions, str)
                                     else list(space.corruptions)))


def _check_data_root(dataset: str, data_root: str | None, n_classes: int) -> None:
    """A clear error when a folder of one's own is passed as a named dataset's ``--data-root``."""
    if data_root is None or dataset == "imagefolder":
        return
    root = Path(data_root).expanduser()
    split = next((root / s for s in ("test", "val", "train") if (root / s).is_dir()), None)
    if split is None:
        return
    found = sum(1 for d in split.iterdir() if d.is_dir())
    if found and found != n_classes:
        raise ConfigError(f"--data-root {data_root} holds {found} class folders but {dataset} has {n_classes}: a "
                          "dataset of your own is passed with --data DIR (Python: data=DIR), not --data-root")


def build_spec(settings: SearchSettings, *, corruptions: tuple[str, ...], severities: tuple[int, ...],
               n_images: int | str | None, calibration_images: int, split: str = "all",
               clean_whole_split: bool = False, corruption_params: str | None = None) -> EvaluationSpec:
    """The evaluation spec of a run at a fidelity of ``n_images`` per (corruption, severity) ("all" = every
    image of ``split``), with the settings' split seed and threads."""
    target, execution = settings.target, settings.execution
    n_classes = dataset_classes(target.dataset, target.data_root)
    _check_data_root(target.dataset, target.data_root, n_classes)
    if is_source(target.model):
        weights = materialize_source(target.model, num_classes=n_classes, weights=target.weights, mean=target.mean,
                                     std=target.std, input_size=target.input_size, cache_dir=execution.cache_dir)
    else:
        if target.mean or target.std or target.input_size:
            raise ConfigError(f"--mean, --std and --input-size describe a model of your own; {target.model} takes "
                              "them from its checkpoint (drop them, or pass --model path/to/file.py:factory)")
        weights = resolve_weights(target.model, target.dataset, weights=target.weights,
                                  weights_dir=target.weights_dir)
    n_per_class = None if n_images in ("all", None) else max(1, int(n_images) // n_classes)
    return EvaluationSpec(
        arch=target.model,
        dataset=target.dataset,
        weights_path=str(Path(weights).resolve()),
        weights_sha256=checkpoint_sha256(weights),
        data_root=str(Path(target.data_root).expanduser().resolve()) if target.data_root else None,
        corruptions=tuple(corruptions),
        severities=tuple(severities),
        n_per_class=n_per_class,
        seed=settings.fidelity.subset_seed,
        release_dir=target.release_dir,
        calibration_images=calibration_images,
        precision=execution.precision,
        device=execution.device,
        batch_size=execution.batch_size,
        cache_dir=str(paths.cache_dir(execution.cache_dir)),
        split=split,
        split_seed=settings.fidelity.split_seed,
        clean_whole_split=clean_whole_split,
        threads=execution.threads,
        corruption_params=corruption_params,
    )


def space_spec(settings: SearchSettings, space: SearchSpace, n_images: int | str | None, *, split: str = "search",
               clean_whole_split: bool = False) -> EvaluationSpec:
    """The evaluation spec of a search over ``space`` at a fidelity of ``n_images`` (see :func:`build_spec`)."""
    calibration = 0
    if needs_calibration(space):
        needed = space.calibration_needed
        calibration = calibration_size(settings.target.calibration_images, needed)
        if calibration < needed:
            raise ConfigError(f"the space's recovery reads {needed} calibration images "
                              f"(recovery.bn_images={space.recovery.bn_images}, finetune_images="
                              f"{space.recovery.finetune_images}{_promoted_pool(space)}) but --calibration-images "
                              f"is {calibration}; raise it or omit it")
    return build_spec(settings, corruptions=_corruption_names(space), severities=tuple(space.severities),
                      n_images=n_images, calibration_images=calibration, split=split,
                      clean_whole_split=clean_whole_split, corruption_params=space.corruption_params)


def resolve_fidelity(settings: SearchSettings, space: SearchSpace) -> Fidelity:
    """The fidelity of a run: the space's, with ``--fidelity``, ``--rungs`` and ``--eval-images`` applied.

    ``--eval-images`` alone selects the fixed mode (the measurement before racing).
    """
    asked = settings.fidelity
    mode = asked.mode or ("fixed" if asked.eval_images is not None else space.fidelity.mode)
    return dataclasses.replace(space.fidelity, mode=mode, rungs=asked.rungs or space.fidelity.rungs,
                               images=asked.eval_images or space.fidelity.images)


def _fit_calibration(settings: SearchSettings, space: SearchSpace) -> tuple[SearchSpace, EvaluationSpec]:
    """The space, its recovery's ``bn_images`` lowered (with a warning) to what the training split holds when
    that is sound (a clear error naming the option that fixes it otherwise), and its search-split spec."""
    probe = space_spec(settings, space, None, split="search")
    if not needs_calibration(space):
        return space, probe
    wanted = probe.calibration_images
    available = len(dataset_labels(probe.dataset, "train", data_root=probe.data_root, cache_dir=probe.cache_dir))
    if available >= wanted:
        return space, probe
    if settings.target.calibration_images or not space.recovery.bn_images:
        asked = "--calibration-images asks" if settings.target.calibration_images else "activation calibration asks"
        raise ConfigError(f"{asked} for {wanted} training images, but the training split of {probe.dataset} holds "
                          f"{available}: pass --calibration-images {available} or fewer")
    if available < MIN_CALIBRATION_IMAGES:
        raise ConfigError(f"the space's recovery needs {wanted} training images for calibration, but the training "
                          f"split of {probe.dataset} holds {available} (fewer than {MIN_CALIBRATION_IMAGES}, too "
                          f"few to re-estimate batch norm): add training images, or pass a copy of {space.source} with "
                          "recovery.bn_images lowered (and --calibration-images) with --space")
    logger.warning("the space's recovery asks for %d calibration images but the training split of %s holds %d: "
                   "using all %d (pass --calibration-images N to choose another number)", wanted, probe.dataset,
                   available, available)
    space = dataclasses.replace(space, recovery=_fitted(space.recovery, available))
    if space.promotion.enabled:
        space = dataclasses.replace(space, promotion=dataclasses.replace(
            space.promotion, recovery=_fitted(space.promotion.recovery, available)))  # type: ignore[arg-type]
    return space, space_spec(settings, space, None, split="search")


def _fitted(recovery: RecoveryConfig, available: int) -> RecoveryConfig:
    """``recovery`` reading at most ``available`` calibration images."""
    pool = recovery.finetune_images
    return dataclasses.replace(recovery, bn_images=min(recovery.bn_images, available),
                               finetune_images=None if pool is None else min(pool, available))


def _writable(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the run folder {out_dir}: {exc.strerror or exc}; pass --out DIR (Python: "
                          "out=...) with a writable folder") from None
    return out_dir


@dataclass(frozen=True)
class SearchContext:
    """Everything a search's stages read, decided once (see :func:`resolve_context`).

    Attributes:
        settings: The resolved settings (every option filled, ``budget_images`` from the space when unset).
        space: The search space (its recovery fitted to the training split, see :func:`resolve_context`).
        encoding: Its decision variables for the model.
        fidelity: The screening fidelity (space's, with the command line's changes).
        pop_size: Plans per generation.
        generations: Generations (:data:`UNTIL_BUDGET` when a budget ends the search).
        out_dir: The run folder (writable).
        executor: Where evaluations run.
        base_spec: The search split's spec, without a window.
        split_size: Images in the search split.
        select_images: Search-split images per (corruption, severity) of the selection stage.
        clean_multiple: Clean images per corrupted image of a window.
        reference_plan: The uncompressed model under the space's recovery.
        promotion: The expensive recovery level and how many plans get it (the space's ``promote``, with
            ``--promote``'s count).
        started: ``time.perf_counter()`` when the run started.
    """

    settings: SearchSettings
    space: SearchSpace
    encoding: Encoding
    fidelity: Fidelity
    pop_size: int
    generations: int
    out_dir: Path
    executor: ExecutorConfig
    base_spec: EvaluationSpec
    split_size: int
    select_images: int
    clean_multiple: int
    reference_plan: CompressionPlan
    started: float
    promotion: Promotion = field(default_factory=Promotion)
    _windows: dict[tuple[int, int], EvaluationSpec] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ladder(self) -> tuple[int, ...]:
        """Cumulative images per (corruption, severity) of the screening rungs."""
        return tuple(self.fidelity.ladder)

    @property
    def budget_images(self) -> int | None:
        """The image budget of screening (None: none)."""
        return self.settings.algorithm.budget_images

    def window_spec(self, start: int, stop: int) -> EvaluationSpec:
        """The resolved spec of positions ``[start, stop)`` of the search split's order (models kept)."""
        if (start, stop) not in self._windows:
            self._windows[start, stop] = dataclasses.replace(
                self.base_spec.with_window(start, stop), keep_models=True,
                clean_multiple=self.clean_multiple).resolved()
        return self._windows[start, stop]

    @property
    def screening_spec(self) -> EvaluationSpec:
        """The spec of the first rung (the run's cache context and corruption set)."""
        return self.window_spec(0, self.ladder[0])

    @property
    def report_split(self) -> str:
        """``report``, or ``search`` when the report is asked on the search split."""
        return "search" if self.settings.fidelity.report_on_search else "report"

    def report_spec(self) -> EvaluationSpec | None:
        """The report stage's spec (None when the report is off)."""
        final = self.settings.fidelity.final_images
        if not final:
            return None
        spec = space_spec(self.settings, self.space, final, split=self.report_split, clean_whole_split=True)
        return dataclasses.replace(spec, keep_models=True).resolved()

    def held_out_spec(self) -> EvaluationSpec:
        """The held-out stage's images: the report split at the held-out images per cell."""
        final = self.settings.fidelity.final_images
        held = self.settings.fidelity.held_out_images or HELD_OUT_IMAGES
        held = held if final == "all" else min(held, int(final))
        return space_spec(self.settings, self.space, held, split=self.report_split)


def _out_dir(settings: SearchSettings, space: SearchSpace) -> Path:
    model = settings.target.model
    name = source_slug(model) if is_source(model) else model
    return Path(settings.output.out or Path("outputs") / f"{name}-{space.name}-seed{settings.algorithm.seed}")


def resolve_context(settings: SearchSettings) -> SearchContext:
    """Resolves a run's settings, space, fidelity, specs and run folder (the search's first step).

    Raises:
        ConfigError: for settings the space or the data cannot satisfy; the message names the fix.
    """
    started = time.perf_counter()
    settings = settings.resolved()
    target, execution, algorithm = settings.target, settings.execution, settings.algorithm
    defaults = model_defaults(target.model)
    space = load_space(default_space(defaults.family, target.space))
    budgeted = algorithm.budget_images is not None or algorithm.time_budget is not None
    generations = algorithm.generations or (UNTIL_BUDGET if budgeted else space.generations)
    if not budgeted and space.budget_images is not None:
        settings = settings.replace(algorithm={"budget_images": space.budget_images})
    if not space.encoding(defaults.layer_groups).variables:
        raise ConfigError(f"{space.source}: every gene has a single choice; nothing to search")
    fidelity = resolve_fidelity(settings, space)
    ladder = fidelity.ladder
    out_dir = _writable(_out_dir(settings, space))
    executor = ExecutorConfig(workers=execution.workers or default_workers(execution.device, execution.threads),
                              scheduler=execution.scheduler)
    how = (f"racing over rungs of {'/'.join(map(str, ladder))}" if fidelity.mode == "racing"
           else f"screening with {ladder[0]}")
    logger.info("preparing %s on %s: %s search-split images per (corruption, severity), %d worker(s) x %s thread(s), "
                "%s; loading images (a first run decodes the dataset and generates the corrupted images it needs "
                "into the cache, about a minute) ...", target.model, target.dataset, how, executor.workers,
                execution.threads, execution.precision)
    space, base_spec = _fit_calibration(settings, space)
    split_size = int(len(split_pool(base_spec)))
    select_n = (settings.fidelity.select_images if settings.fidelity.select_images is not None
                else min(split_size, 2 * ladder[-1]))
    if max(ladder[-1], select_n) > split_size:
        raise ConfigError(f"the rungs ask for {max(ladder[-1], select_n)} images per (corruption, severity) but the "
                          f"search split holds {split_size}; lower --rungs / --eval-images / --select-images")
    clean_multiple = max(1, min(fidelity.clean_multiple, split_size // max(ladder[-1], select_n)))
    if clean_multiple < fidelity.clean_multiple:
        logger.info("note: fidelity.clean_multiple lowered from %d to %d: the search split holds %d images",
                    fidelity.clean_multiple, clean_multiple, split_size)
    return SearchContext(settings=settings, space=space, encoding=space.encoding(defaults.layer_groups),
                         fidelity=fidelity, pop_size=algorithm.pop_size or space.pop_size, generations=generations,
                         out_dir=out_dir, executor=executor, base_spec=base_spec, split_size=split_size,
                         select_images=select_n, clean_multiple=clean_multiple,
                         reference_plan=CompressionPlan(recovery=space.recovery), started=started,
                         promotion=_promotion(settings, space))


def _promotion(settings: SearchSettings, space: SearchSpace) -> Promotion:
    """The space's promotion with ``--promote``'s count (a clear error when the space has no expensive level)."""
    asked = settings.fidelity.promote
    if asked is None:
        return space.promotion
    if asked and space.promotion.recovery is None:
        raise ConfigError(f"--promote {asked}: {space.source} has no expensive recovery level to promote plans to; add "
                          "a 'promote: {plans: N, recovery: {finetune_steps: ...}}' section to a copy of the space and "
                          "pass it with --space (search_spaces/vgg19.yaml has one)")
    return dataclasses.replace(space.promotion, plans=asked)
