"""The settings of one search run, in groups: what to compress, the algorithm, the fidelity, the execution, the output.

>>> settings = SearchSettings(TargetSettings("resnet20"), fidelity=FidelitySettings(eval_images=50), quick=True)
>>> settings.replace(output={"out": "outputs/try"}).output.out
'outputs/try'

Options left as None take the search space's values (``algorithm.pop_size`` ...) or the defaults
below; the resolved settings are written, nested by group, to the run's ``config.yaml`` so every run
can be reproduced from its own folder. :meth:`SearchSettings.from_dict` also reads the flat
settings of run folders written before the grouping (format 1 and 2, see :mod:`moo_compress.runfolder`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from moo_compress import runfolder
from moo_compress.errors import ConfigError

__all__ = ["SearchSettings", "TargetSettings", "AlgorithmSettings", "FidelitySettings", "ExecutionSettings",
           "OutputSettings", "DEFAULTS", "QUICK_PRESET", "FLAT_NAMES", "parse_budget"]

#: Values of the options left unset (None) in a normal run, per group.
DEFAULTS: dict[str, dict[str, Any]] = {"fidelity": {"final_images": 150}, "execution": {"threads": 1}}
#: What ``--quick`` changes, per group (options given explicitly still win): a search of about a minute.
QUICK_PRESET: dict[str, dict[str, Any]] = {"algorithm": {"pop_size": 6, "generations": 2},
                                           "fidelity": {"rungs": (10, 20), "select_images": 50, "final_images": 50}}

G = TypeVar("G", bound="_Group")


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


def _close(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _paths(group: object, *names: str) -> None:
    """Each of ``names`` given as a path object is kept as its string (the settings are written as YAML)."""
    for name in names:
        value = getattr(group, name)
        if isinstance(value, os.PathLike):
            object.__setattr__(group, name, os.fspath(value))


def _positive(group: object, *names: str) -> None:
    """Each of ``names`` is None or an integer >= 1 (the message names the command-line option)."""
    for name in names:
        value = getattr(group, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


class _Group:
    """JSON round-trip shared by the settings groups (``section``: the group's key in :class:`SearchSettings`)."""

    section: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form: every field, tuples as lists."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[G], data: Mapping[str, Any]) -> G:
        """Rebuilds the group from :meth:`to_dict` output; fields left out take their defaults.

        Raises:
            ConfigError: for an unknown key (the message names it and the valid ones) or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"search settings '{cls.section}' must be a mapping of its fields, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown {cls.section} settings {unknown}{_close(str(unknown[0]), names)}; valid: "
                              f"{', '.join(names)}")
        missing = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in data]
        if missing:
            raise ConfigError(f"search settings need {cls.section}.{missing[0]}")
        return cls(**data)


@dataclass(frozen=True)
class TargetSettings(_Group):
    """What to compress, on which data.

    Attributes:
        model: Architecture name or model source (``torchvision:<name>``, ``timm:<name>``,
            ``path/to/file.py:factory``, ``pkg.module:factory``; :mod:`moo_compress.models.sources`);
            a model file is named by its absolute path (:func:`~moo_compress.models.sources.canonical_source`).
            Command line: ``--arch`` / ``--model``.
        dataset: ``cifar10``, ``cifar100`` or ``imagefolder`` (a tree of your own at ``data_root``, any
            number of classes).
        data_root: The dataset's folder (default: found under ``$MOO_COMPRESS_DATA``).
        weights: Checkpoint path (else resolved from the weights folder).
        weights_dir: Weights folder (default ``$MOO_COMPRESS_WEIGHTS``).
        mean: Per-channel input mean on [0, 1] pixels of a model source without its own (default: the
            checkpoint's, else the model's metadata).
        std: Per-channel input standard deviation, likewise.
        input_size: Input pixels (square) of a model source without its own: images of another size are
            resized to it, whole (default: the model's metadata, else the data's own size).
        release_dir: A CIFAR-C release folder (default: found under ``$MOO_COMPRESS_DATA``, else generated).
        space: Search space name (``search_spaces/<name>.yaml``) or path; default: the architecture
            family's space (``vgg19``, ``cifar_resnet``, ``resnet50``, ``mobilenetv2``).
        calibration_images: Training images for batch-norm re-estimation / activation calibration
            (default: the space's ``recovery.bn_images``, at least 512 when activations are quantized).
    """

    section: ClassVar[str] = "target"

    model: str
    dataset: str = "cifar10"
    data_root: str | None = None
    weights: str | None = None
    weights_dir: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_size: int | None = None
    release_dir: str | None = None
    space: str | None = None
    calibration_images: int | None = None

    def __post_init__(self) -> None:
        from moo_compress.models.sources import canonical_source, is_source

        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"--arch must name a model (a registry name such as resnet20, or a model source), "
                              f"got {self.model!r}")
        if is_source(self.model):
            object.__setattr__(self, "model", canonical_source(self.model))
        _paths(self, "data_root", "weights", "weights_dir", "release_dir", "space")
        _positive(self, "input_size")
        if self.calibration_images is not None and (not isinstance(self.calibration_images, int)
                                                    or self.calibration_images < 0):
            raise ConfigError(f"--calibration-images must be an integer >= 0, got {self.calibration_images!r}")
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


@dataclass(frozen=True)
class AlgorithmSettings(_Group):
    """The algorithm and when it stops.

    Attributes:
        name: The algorithm (:data:`~moo_compress.search.algorithms.ALGORITHMS`: ``nsga2``, ``nsga3``,
            ``grid``; default: the space's ``algorithm.name``, NSGA-II). Command line:
            ``--algorithm``. In Python, :func:`~moo_compress.search.run.run_search` also takes any pymoo
            algorithm object.
        pop_size: NSGA-II population (default: the space's ``algorithm.pop_size``).
        generations: NSGA-II generations (default: the space's; with a budget and no generations, NSGA-II
            runs until the budget is spent).
        seed: Seed of NSGA-II (its initial population, crossover and mutation).
        max_evals: Stop after this many evaluations.
        budget_images: Images (clean plus corrupted, cache hits included): no new generation starts, and
            no candidate is promoted, once spent; deterministic, so every execution mode returns the
            same front (default: the space's ``budget_images``). Command line: ``--budget N``.
        time_budget: Seconds: no new generation starts, and no candidate is promoted, once spent (not
            deterministic: depends on the machine). Command line: ``--budget 25m``.
    """

    section: ClassVar[str] = "algorithm"

    name: str | None = None
    pop_size: int | None = None
    generations: int | None = None
    seed: int = 0
    max_evals: int | None = None
    budget_images: int | None = None
    time_budget: float | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            from moo_compress.search.algorithms import ALGORITHMS

            ALGORITHMS.get(self.name)  # an unknown name lists the valid ones
        _positive(self, "pop_size", "generations", "max_evals")
        if self.budget_images is not None and (not isinstance(self.budget_images, int) or self.budget_images < 1):
            raise ConfigError(f"--budget as images must be a positive integer, got {self.budget_images!r}")
        if self.pop_size is not None and self.pop_size < 2:
            raise ConfigError(f"--pop-size must be at least 2, got {self.pop_size}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"--budget as a time must be positive, got {self.time_budget} seconds")


#: Default report-split images per (corruption, severity) of the held-out measurement: a third of the
#: report's 150, so that it costs about what the report does (its corruptions are 14 to the report's 15).
HELD_OUT_IMAGES = 50


@dataclass(frozen=True)
class FidelitySettings(_Group):
    """Which images measure a plan, and how many, at each stage (screening, selection, report).

    Attributes:
        mode: ``racing`` or ``fixed`` (default: the space's ``fidelity.mode``, or ``fixed`` when
            ``eval_images`` is given). Command line: ``--fidelity``.
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
        subset_seed: Seed of the evaluation image subsets and of generated corruptions; kept apart from
            ``algorithm.seed`` so that searches with different seeds score plans on the same images and
            share cached evaluations.
        report_on_search: Report on the search split (the images that selected the plans): the
            figures are then optimistic, and the summary says so.
        held_out_images: Report-split images per (corruption, severity) of the held-out measurement
            (``output.held_out``); default :data:`HELD_OUT_IMAGES`, at most ``final_images``.
        promote: Recovery as a fidelity: at most this many contenders get the space's expensive recovery
            level after selection (``promote.plans``); 0 turns it off. Default: the space's.
    """

    section: ClassVar[str] = "fidelity"

    mode: str | None = None
    rungs: tuple[int, ...] | None = None
    eval_images: int | None = None
    select_images: int | None = None
    final_images: int | str | None = None
    split_seed: int = 0
    subset_seed: int = 0
    report_on_search: bool = False
    held_out_images: int | None = None
    promote: int | None = None

    def __post_init__(self) -> None:
        _positive(self, "eval_images")
        if self.promote is not None and (isinstance(self.promote, bool) or not isinstance(self.promote, int)
                                         or self.promote < 0):
            raise ConfigError(f"--promote must be an integer >= 0 (0: no plan gets the expensive recovery level), got "
                              f"{self.promote!r}")
        _positive(self, "held_out_images")
        final = self.final_images
        if final is not None and final != "all" and (not isinstance(final, int) or final < 0):
            raise ConfigError(f"--final-images must be 'all' or an integer >= 0 (0 skips re-evaluation), got {final!r}")
        if self.select_images is not None and (not isinstance(self.select_images, int) or self.select_images < 0):
            raise ConfigError(f"--select-images must be an integer >= 0 (0 selects on the screening numbers), "
                              f"got {self.select_images!r}")
        if self.mode is not None and self.mode not in ("racing", "fixed"):
            raise ConfigError(f"--fidelity must be 'racing' or 'fixed', got {self.mode!r}")
        if self.mode == "racing" and self.eval_images is not None:
            raise ConfigError("--eval-images sets a fixed fidelity; racing takes --rungs (or drop --fidelity racing)")
        if self.rungs is not None:
            from moo_compress.search.fidelity import Fidelity

            try:
                rungs = tuple(self.rungs)
            except TypeError:
                raise ConfigError(f"--rungs must be image counts such as 10,20,40, got {self.rungs!r}") from None
            object.__setattr__(self, "rungs", Fidelity(rungs=rungs).rungs)  # validates, names the option


@dataclass(frozen=True)
class ExecutionSettings(_Group):
    """Where and how the evaluations run; these never change a number (``threads`` is fixed per evaluation
    and part of the cache key so that they do not).

    Attributes:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        precision: Evaluation precision (``bf16``, ``fp32`` or ``auto``: bf16 where it is faster, see
            :func:`~moo_compress.evaluation.resolve_precision`; resolved before the run starts).
        threads: torch CPU threads per evaluation, fixed so that every execution mode (``workers``,
            ``scheduler``) computes the same numbers.
        batch_size: Images per forward pass (default: 64 per CPU thread, 256 on CUDA).
        workers: Worker processes (default: one per GPU on CUDA, else one per ``threads`` CPU cores).
        scheduler: Dask scheduler (``local`` or ``tcp://host:port``).
        cache_dir: Cache root (default ``$MOO_COMPRESS_CACHE``).
    """

    section: ClassVar[str] = "execution"

    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    batch_size: int | None = None
    workers: int | None = None
    scheduler: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        _paths(self, "cache_dir")
        _positive(self, "threads", "batch_size", "workers")


@dataclass(frozen=True)
class OutputSettings(_Group):
    """Where the run folder goes and which plans it recommends.

    Attributes:
        out: Run folder (default ``outputs/<model>-<space>-seed<seed>``).
        pick_min_ratio: "Most robust plan with compression ratio >= X" recommendation.
        pick_max_drop: "Smallest plan within D points of the baseline's clean accuracy" recommendation.
        held_out: Which reported plans are also measured on corruptions the search never saw:
            ``recommended`` (the recommendations and the reference), ``front`` (every reported plan) or
            ``off``.
    """

    section: ClassVar[str] = "output"

    out: str | None = None
    pick_min_ratio: float = 8.0
    pick_max_drop: float = 2.0
    held_out: str = "recommended"

    def __post_init__(self) -> None:
        _paths(self, "out")
        if self.held_out not in ("recommended", "front", "off"):
            raise ConfigError(f"--held-out must be 'recommended', 'front' or 'off', got {self.held_out!r}")


#: The groups of :class:`SearchSettings`, by their key.
_GROUPS: dict[str, type[_Group]] = {g.section: g for g in (TargetSettings, AlgorithmSettings, FidelitySettings,
                                                         ExecutionSettings, OutputSettings)}
#: The flat name of every setting (the key in ``config.yaml`` before format 3, the command-line option's
#: name with underscores: ``arch``, ``pop_size``, ``fidelity``, ``eval_images``...) -> (group, field).
FLAT_NAMES: dict[str, tuple[str, str]] = {
    runfolder.SETTINGS_FLAT_NAMES.get((g, f.name), f.name): (g, f.name)
    for g, cls in _GROUPS.items() for f in dataclasses.fields(cls)  # type: ignore[arg-type]
}


@dataclass(frozen=True)
class SearchSettings:
    """Everything a search run needs (see ``python -m moo_compress.search --help``, whose options are
    grouped the same way).

    Attributes:
        target: What to compress, on which data (:class:`TargetSettings`).
        algorithm: NSGA-II and when it stops (:class:`AlgorithmSettings`).
        fidelity: Which images, how many (:class:`FidelitySettings`).
        execution: Where and how it runs; never changes a number (:class:`ExecutionSettings`).
        output: The run folder and the recommendations (:class:`OutputSettings`).
        quick: Apply :data:`QUICK_PRESET` to options not given.
    """

    target: TargetSettings
    algorithm: AlgorithmSettings = field(default_factory=AlgorithmSettings)
    fidelity: FidelitySettings = field(default_factory=FidelitySettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    quick: bool = False

    def __post_init__(self) -> None:
        for name, cls in _GROUPS.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise ConfigError(f"SearchSettings.{name} must be a {cls.__name__}, got {type(value).__name__} "
                                  "(SearchSettings.from_dict reads dicts)")
        if not isinstance(self.quick, bool):
            raise ConfigError(f"--quick is True or False, got {self.quick!r}")

    def replace(self, *, target: Mapping[str, Any] | None = None, algorithm: Mapping[str, Any] | None = None,
                fidelity: Mapping[str, Any] | None = None, execution: Mapping[str, Any] | None = None,
                output: Mapping[str, Any] | None = None, quick: bool | None = None) -> SearchSettings:
        """The settings with some fields of some groups changed, e.g. ``replace(fidelity={"final_images": 0})``.

        Raises:
            ConfigError: for a field the group does not have (the message names the valid ones) or an
                invalid value.
        """
        groups = {"target": target, "algorithm": algorithm, "fidelity": fidelity, "execution": execution,
                  "output": output}
        changes: dict[str, Any] = {} if quick is None else {"quick": quick}
        for name, updates in groups.items():
            if updates:
                group = getattr(self, name)
                changes[name] = type(group).from_dict({**group.to_dict(), **updates})
        return dataclasses.replace(self, **changes)

    def resolved(self) -> SearchSettings:
        """The settings with every option left unset filled from :data:`QUICK_PRESET` (with ``quick``)
        or :data:`DEFAULTS`, and the precision resolved; search-space options (``algorithm.pop_size``,
        ``algorithm.generations``) stay None here."""
        from moo_compress.evaluation.runtime import resolve_precision

        changes: dict[str, dict[str, Any]] = {}
        for name in _GROUPS:
            group = getattr(self, name)
            preset = {**DEFAULTS.get(name, {}), **(QUICK_PRESET.get(name, {}) if self.quick else {})}
            changes[name] = {k: v for k, v in preset.items() if getattr(group, k) is None}
        execution = self.execution
        changes["execution"]["precision"] = resolve_precision(execution.precision, execution.device)
        return dataclasses.replace(self, **{name: dataclasses.replace(getattr(self, name), **c)
                                            for name, c in changes.items() if c})

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form, nested by group: ``{"target": {...}, "algorithm": {...}, ..., "quick": ...}``."""
        return {**{name: getattr(self, name).to_dict() for name in _GROUPS}, "quick": self.quick}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSettings:
        """Rebuilds settings from :meth:`to_dict` output (a run's ``config.yaml``), or from the flat form
        of run folders written before the grouping (keys of :data:`FLAT_NAMES`, e.g. ``arch``,
        ``pop_size``, ``fidelity``); groups or fields left out take their defaults.

        Raises:
            ConfigError: for an unknown key (the message names it and the valid ones) or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"search settings must be a mapping, got {type(data).__name__}")
        if "target" in data or any(isinstance(data.get(name), Mapping) for name in _GROUPS):
            valid = [*_GROUPS, "quick"]
            unknown = sorted(set(data) - set(valid))
            if unknown:
                raise ConfigError(f"unknown search settings {unknown}{_close(str(unknown[0]), valid)}; valid: "
                                  f"{', '.join(valid)}")
            if "target" not in data:
                raise ConfigError("search settings need a 'target' with its 'model' (a registry name or model source)")
            groups = {name: group.from_dict(data[name] or {}) for name, group in _GROUPS.items() if name in data}
            return cls(**groups, quick=data.get("quick", False))  # type: ignore[arg-type]
        valid = [*FLAT_NAMES, "quick"]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"unknown search settings {unknown}{_close(str(unknown[0]), valid)}; valid: "
                              f"{', '.join(valid)}")
        nested: dict[str, Any] = {"target": {}}
        for key, value in data.items():
            if key != "quick":
                group, name = FLAT_NAMES[key]
                nested.setdefault(group, {})[name] = value
        if "model" not in nested["target"]:
            raise ConfigError("search settings need 'arch': a registry name (e.g. resnet20) or a model source")
        return cls.from_dict({**nested, "quick": data.get("quick", False)})
