"""The settings of one search run: CLI options over the search space's own defaults.

Options left as None take the search space's values (``algorithm.pop_size`` ...) or the defaults
below; the resolved settings are written to the run's ``config.yaml`` so every run can be reproduced
from its own folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from moo_compress.errors import ConfigError

__all__ = ["SearchSettings", "DEFAULTS", "QUICK_PRESET", "parse_budget"]

#: Values of the options left unset (None) in a normal run.
DEFAULTS: dict[str, Any] = {"final_images": 150, "threads": 1}
#: What ``--quick`` changes (options given explicitly still win): a search of about a minute.
QUICK_PRESET: dict[str, Any] = {"pop_size": 6, "generations": 2, "rungs": (10, 20), "select_images": 50,
                                "final_images": 50}


def parse_budget(text: str | int) -> tuple[str, float]:
    """A budget as ``("images", n)`` from ``250000`` or ``("seconds", s)`` from ``"1500s"``, ``"25m"``, ``"1.5h"``.

    Raises:
        ConfigError: for anything else (the message shows both forms).
    """
    text = str(text).strip()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
            if value > 0:
                return ("seconds", value)
        elif int(text) > 0:
            return ("images", int(text))
    except ValueError:
        pass
    raise ConfigError(f"expected a positive number of images (e.g. 250000) or a time with a unit (e.g. 1500s, 25m, "
                      f"1.5h), got {text!r}")


@dataclass(frozen=True)
class SearchSettings:
    """Everything a search run needs (see ``python -m moo_compress.search --help``).

    Attributes:
        arch: Architecture name or model source (``torchvision:<name>``, ``timm:<name>``,
            ``path/to/file.py:factory``, ``pkg.module:factory``; :mod:`moo_compress.models.sources`).
        dataset: ``cifar10``, ``cifar100`` or ``imagefolder`` (a tree of your own at ``data_root``, any
            number of classes).
        weights: Checkpoint path (else resolved from the weights folder).
        weights_dir: Weights folder (default ``$MOO_COMPRESS_WEIGHTS``).
        mean: Per-channel input mean on [0, 1] pixels of a model source without its own (default: the
            checkpoint's, else the model's metadata).
        std: Per-channel input standard deviation, likewise.
        input_size: Input pixels (square) of a model source without its own: images of another size are
            resized to it, whole (default: the model's metadata, else the data's own size).
        data_root: The dataset's folder (default: found under ``$MOO_COMPRESS_DATA``).
        release_dir: A CIFAR-C release folder (default: found under ``$MOO_COMPRESS_DATA``, else generated).
        space: Search space name (``search_spaces/<name>.yaml``) or path; default: the architecture
            family's space (``vgg19``, ``cifar_resnet``, ``resnet50``, ``mobilenetv2``).
        pop_size: NSGA-II population (default: the space's).
        generations: NSGA-II generations (default: the space's).
        max_evals: Stop after this many evaluations.
        time_budget: Seconds: no new generation starts, and no candidate is promoted, once spent (not
            deterministic: depends on the machine).
        budget_images: Images (clean plus corrupted, cache hits included): no new generation starts, and
            no candidate is promoted, once spent; deterministic, so every execution mode returns the
            same front. With a budget and no ``generations``, NSGA-II runs until the budget is spent.
        fidelity: ``racing`` or ``fixed`` (default: the space's ``fidelity.mode``, or ``fixed`` when
            ``eval_images`` is given).
        rungs: Racing rungs, cumulative images per (corruption, severity) (default: the space's).
        eval_images: Fixed fidelity: search-split images for clean accuracy and for every (corruption,
            severity) (default: the space's ``fidelity.images``).
        select_images: Selection fidelity: the screening front and the plans within its noise are
            brought to this many search-split images per (corruption, severity) (the same images
            extended, never re-drawn), and the front and the recommendations are decided on these
            numbers; 0 decides on the screening numbers. Default: twice the top rung (racing) or twice
            ``eval_images`` (fixed).
        final_images: Report fidelity: report-split images per (corruption, severity) on which the
            selected plans, the reference and the original model are measured (clean accuracy on the
            whole report split); ``"all"`` for the whole split, 0 to skip the report.
        split_seed: Seed of the stratified search/report split of the test set.
        report_on_search: Report on the search split (the images that selected the plans): the
            figures are then optimistic, and the summary says so.
        threads: torch CPU threads per evaluation, fixed so that every execution mode (``--workers``,
            ``--scheduler``) computes the same numbers.
        calibration_images: Training images for batch-norm re-estimation / activation calibration
            (default: the space's ``recovery.bn_images``, at least 512 when activations are quantized).
        precision: Evaluation precision (``bf16``, ``fp32`` or ``auto``: bf16 where it is faster, see
            :func:`~moo_compress.evaluation.resolve_precision`; resolved before the run starts).
        device: ``cpu``, ``cuda`` or ``auto``.
        batch_size: Images per forward pass (default: 64 per CPU thread, 256 on CUDA).
        seed: Seed of NSGA-II (its initial population, crossover and mutation).
        subset_seed: Seed of the evaluation image subsets and of generated corruptions; kept apart from
            ``seed`` so that searches with different seeds score plans on the same images and share
            cached evaluations.
        out: Run folder (default ``outputs/<arch>-<space>-seed<seed>``).
        cache_dir: Cache root (default ``$MOO_COMPRESS_CACHE``).
        workers: Worker processes (default: one per GPU on CUDA, else one per ``threads`` CPU cores).
        scheduler: Dask scheduler (``local`` or ``tcp://host:port``).
        pick_min_ratio: "Most robust plan with compression ratio >= X" recommendation.
        pick_max_drop: "Smallest plan within D points of the baseline's clean accuracy" recommendation.
        quick: Apply :data:`QUICK_PRESET` to options not given.
    """

    arch: str
    dataset: str = "cifar10"
    weights: str | None = None
    weights_dir: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_size: int | None = None
    data_root: str | None = None
    release_dir: str | None = None
    space: str | None = None
    pop_size: int | None = None
    generations: int | None = None
    max_evals: int | None = None
    time_budget: float | None = None
    budget_images: int | None = None
    fidelity: str | None = None
    rungs: tuple[int, ...] | None = None
    eval_images: int | None = None
    select_images: int | None = None
    final_images: int | str | None = None
    split_seed: int = 0
    report_on_search: bool = False
    threads: int | None = None
    calibration_images: int | None = None
    precision: str = "auto"
    device: str = "auto"
    batch_size: int | None = None
    seed: int = 0
    subset_seed: int = 0
    out: str | None = None
    cache_dir: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    pick_min_ratio: float = 8.0
    pick_max_drop: float = 2.0
    quick: bool = False

    def __post_init__(self) -> None:
        from moo_compress.models.sources import canonical_source, is_source

        if is_source(self.arch):
            object.__setattr__(self, "arch", canonical_source(self.arch))
        positive = ("pop_size", "generations", "max_evals", "eval_images", "workers", "batch_size", "threads",
                    "budget_images", "input_size")
        for name in positive:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        final = self.final_images
        if final is not None and final != "all" and (not isinstance(final, int) or final < 0):
            raise ConfigError(f"--final-images must be 'all' or an integer >= 0 (0 skips re-evaluation), got {final!r}")
        if self.select_images is not None and (not isinstance(self.select_images, int) or self.select_images < 0):
            raise ConfigError(f"--select-images must be an integer >= 0 (0 selects on the screening numbers), "
                              f"got {self.select_images!r}")
        if self.calibration_images is not None and self.calibration_images < 0:
            raise ConfigError(f"--calibration-images must be >= 0, got {self.calibration_images}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"--time-budget must be positive (seconds), got {self.time_budget}")
        if self.fidelity is not None and self.fidelity not in ("racing", "fixed"):
            raise ConfigError(f"--fidelity must be 'racing' or 'fixed', got {self.fidelity!r}")
        if self.fidelity == "racing" and self.eval_images is not None:
            raise ConfigError("--eval-images sets a fixed fidelity; racing takes --rungs (or drop --fidelity racing)")
        if self.rungs is not None:
            from moo_compress.search.fidelity import Fidelity

            object.__setattr__(self, "rungs", Fidelity(rungs=tuple(self.rungs)).rungs)  # validates, names the option
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                try:
                    stats = tuple(float(v) for v in value)
                except (TypeError, ValueError):
                    stats = ()
                if len(stats) != 3 or (name == "std" and min(stats) <= 0):
                    raise ConfigError(f"--{name} must be three numbers R,G,B on [0, 1] pixels (e.g. 0.485,0.456,0.406)"
                                      f"{', all positive' if name == 'std' else ''}; got {value!r}")
                object.__setattr__(self, name, stats)
        if self.pop_size is not None and self.pop_size < 2:
            raise ConfigError(f"--pop-size must be at least 2, got {self.pop_size}")

    def resolved(self) -> SearchSettings:
        """The settings with every option left unset filled from :data:`QUICK_PRESET` (with ``quick``)
        or :data:`DEFAULTS`; search-space options (``pop_size``, ``generations``) stay None here."""
        from moo_compress.evaluation.runtime import resolve_precision

        preset = {**DEFAULTS, **(QUICK_PRESET if self.quick else {})}
        changes = {k: v for k, v in preset.items() if getattr(self, k) is None}
        changes["precision"] = resolve_precision(self.precision, self.device)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form."""
        out = dataclasses.asdict(self)
        for name in ("rungs", "mean", "std"):
            out[name] = list(getattr(self, name)) if getattr(self, name) is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSettings:
        """Rebuilds settings from :meth:`to_dict` output (e.g. a run's ``config.yaml``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown search settings {sorted(unknown)}")
        data = {**data, **{k: tuple(data[k]) for k in ("rungs", "mean", "std") if data.get(k) is not None}}
        return cls(**data)
