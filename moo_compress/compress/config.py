"""Compression configs: one frozen dataclass per technique, composed into a :class:`CompressionPlan`.

Every config validates itself in ``__post_init__`` (the message names the setting and proposes a
fix) and round-trips through JSON: ``to_dict()`` gives the canonical form (fields equal to their
default are left out, for short, readable plans), ``from_dict()`` rebuilds it, and ``key()`` is a
short hash of the fully resolved form (``to_dict(defaults=True)``: every field, defaults included),
stable across processes, so a changed default never lets an old key stand for new behaviour.

>>> plan = CompressionPlan(prune=PruneConfig(0.5), cluster=ClusterConfig(16), quantize=QuantizeConfig(8))
>>> plan.to_dict()
{'cluster': {'n_clusters': 16}, 'prune': {'sparsity': 0.5}, 'quantize': {'weight_bits': 8}}
>>> CompressionPlan.from_dict(plan.to_dict()) == plan
True
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from moo_compress.errors import ConfigError
from moo_compress.fileio import stable_hash

__all__ = [
    "WEIGHT_BITS",
    "PruneConfig",
    "ClusterConfig",
    "QuantizeConfig",
    "RecoveryConfig",
    "LayerGroup",
    "CompressionPlan",
]

#: Bit-widths a weight or activation can be quantized to.
WEIGHT_BITS = (2, 3, 4, 5, 6, 7, 8, 16)
_MAX_CLUSTERS = 256

C = TypeVar("C", bound="_Config")


def _close(value: object, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name} must be True or False, got {value!r}")


def _check_int(owner: str, name: str, value: object, *, low: int, high: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
        raise ConfigError(f"{owner}.{name} must be an integer, got {value!r}{hint}")
    value = int(value)
    if value < low or (high is not None and value > high):
        span = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{owner}.{name}={value} is out of range {span}{hint}")
    return value


def _check_choice(owner: str, name: str, value: object, choices: Sequence[str], meaning: str = "") -> None:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"unknown {owner}.{name} {value!r}{_close(value, choices)} (use {options}{meaning})")


def _check_nested(owner: str, name: str, value: object, cls: type) -> None:
    if value is not None and not isinstance(value, cls):
        raise ConfigError(
            f"{owner}.{name} must be a {cls.__name__} or None, got {type(value).__name__}; "
            f"build it with {cls.__name__}(...) or {cls.__name__}.from_dict(...)"
        )


def _patterns(owner: str, name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(
            f"{owner}.{name} must be a sequence of glob patterns, got the string {value!r}; write ({value!r},)"
        )
    if not isinstance(value, Sequence) or not all(isinstance(p, str) and p for p in value):
        raise ConfigError(f"{owner}.{name} must be a sequence of non-empty glob strings, got {value!r}")
    return tuple(value)


class _Config:
    """JSON round-trip shared by every config (the subclasses are frozen dataclasses)."""

    # field name -> config class of a nested config; a 1-tuple means "a tuple of that class".
    _nested: ClassVar[dict[str, Any]] = {}
    #: Fields added after keys were first written -> the value that behaves as before the field existed;
    #: the resolved form leaves such a field out at that value, so earlier keys (and cached results) hold.
    added_fields: ClassVar[dict[str, Any]] = {}

    def to_dict(self, *, defaults: bool = False) -> dict[str, Any]:
        """The canonical JSON-able form.

        Args:
            defaults: Keep fields equal to their default too (the fully resolved form that
                :meth:`key` hashes); by default they are left out, for short, readable plans.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if not defaults and f.default is not dataclasses.MISSING and value == f.default:
                continue
            if not defaults and f.default_factory is not dataclasses.MISSING and value == f.default_factory():
                continue
            if f.name in self.added_fields and value == self.added_fields[f.name]:
                continue
            if isinstance(value, _Config):
                value = value.to_dict(defaults=defaults)
            elif isinstance(value, tuple):
                value = [v.to_dict(defaults=defaults) if isinstance(v, _Config) else v for v in value]
            out[f.name] = value
        return dict(sorted(out.items()))

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Rebuilds a config from :meth:`to_dict` output (missing fields take their defaults).

        Raises:
            ConfigError: on unknown keys (with close matches) or invalid values.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field {unknown[0]!r}{_close(unknown[0], names)} (fields: {', '.join(names)})"
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            nested = cls._nested.get(key)
            if isinstance(nested, tuple) and value is not None:
                if not isinstance(value, Sequence) or isinstance(value, str):
                    raise ConfigError(f"{cls.__name__}.{key} must be a list, got {value!r}")
                value = tuple(nested[0].from_dict(v) if isinstance(v, Mapping) else v for v in value)
            elif nested is not None and isinstance(value, Mapping):
                value = nested.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a required field is missing
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no whitespace) of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        """Rebuilds a config from :meth:`to_json` (or any JSON of the same shape)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}.from_json: invalid JSON ({exc})") from None
        return cls.from_dict(data)

    def key(self) -> str:
        """A 16-hex-digit hash of the fully resolved form (every field, defaults included).

        Equal configs give equal keys in every process, and changing any default changes the key of
        every config that relies on it, so results cached under an old key are never reused for the
        new behaviour. A field added later is left out while it holds the value that behaves as before
        it existed, so adding it keeps earlier keys.
        """
        return stable_hash([type(self).__name__, self.to_dict(defaults=True)])


@dataclasses.dataclass(frozen=True)
class PruneConfig(_Config):
    """L1-magnitude pruning.

    Attributes:
        sparsity: Fraction of the weights set to zero, in [0, 1).
        scope: ``"global"`` ranks the weights of all selected layers together (one threshold), so
            layers end with different sparsities; ``"layer"`` prunes every layer to ``sparsity``.
        structured: Prune whole output filters (rows of Conv2d/Linear weights) by their L1 norm
            instead of single weights. Global structured pruning ranks filters by mean |w| and keeps
            at least one filter per layer; layer-wise it prunes ``round(sparsity * filters)``. A
            pruned filter's channel is removed as a whole: its bias and, when a batch norm alone
            reads the layer's output, that norm's weight and bias for the channel are zeroed too, so
            the channel's output is exactly zero (and an exported graph can drop it).
        removable_only: Structured pruning of only the layers whose filters can be physically
            removed from a deployed graph: those whose output reaches nothing but other Conv2d (one
            group) and Linear layers through per-channel operations (batch norm, ReLU-like
            activations, pooling, dropout, a flatten before a Linear); not layers that feed a
            residual addition, a concatenation or a depthwise convolution (see
            :mod:`moo_compress.compress.channels`). Global scope ranks only those layers' filters;
            the other layers keep their clustering and quantization. Needs ``structured=True`` and a
            model torch.fx can trace.
    """

    sparsity: float
    scope: str = "global"
    structured: bool = False
    removable_only: bool = False

    SCOPES: ClassVar[tuple[str, ...]] = ("global", "layer")

    def __post_init__(self) -> None:
        s = self.sparsity
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise ConfigError(f"PruneConfig.sparsity must be a number in [0, 1), got {s!r}")
        if not 0 <= s < 1:
            hint = f"; for {s:g}% write {s / 100:g}" if 1 <= s < 100 else ""
            raise ConfigError(
                f"PruneConfig.sparsity={s!r} is outside [0, 1): give the fraction of weights to zero, "
                f"e.g. 0.5 for 50%{hint}"
            )
        object.__setattr__(self, "sparsity", float(s))
        _check_choice(
            "PruneConfig",
            "scope",
            self.scope,
            self.SCOPES,
            ": one threshold across the layers, or every layer pruned to the sparsity",
        )
        _check_bool("PruneConfig", "structured", self.structured)
        _check_bool("PruneConfig", "removable_only", self.removable_only)
        if self.removable_only and not self.structured:
            raise ConfigError(
                "PruneConfig.removable_only=True needs structured=True (only whole filters can be removed "
                "from a graph); set structured=True, or removable_only=False for unstructured pruning"
            )


@dataclasses.dataclass(frozen=True)
class ClusterConfig(_Config):
    """Per-layer k-means weight sharing (each layer keeps at most ``n_clusters`` distinct non-zero values).

    Attributes:
        n_clusters: Centroids per layer, in [2, 256].
        init: ``"optimal"`` (the default: the exact optimum of 1-D k-means over a fine histogram of the
            weights, by dynamic programming, then Lloyd iterations on the weights themselves; see
            :mod:`moo_compress.compress.cluster`), ``"kmeans++"`` (one k-means++ start then Lloyd, seeded
            by the plan's seed and the layer's name, so a layer clusters the same whichever other layers a
            plan compresses) or ``"linear"`` (Lloyd from centroids evenly spaced between the smallest
            and largest weight).
        preserve_sparsity: Zero weights stay zero and take no centroid (as TF-MOT's
            sparsity-preserving clustering); otherwise zeros are clustered like any weight.
    """

    n_clusters: int
    init: str = "optimal"
    preserve_sparsity: bool = True

    INITS: ClassVar[tuple[str, ...]] = ("optimal", "kmeans++", "linear")

    def __post_init__(self) -> None:
        k = _check_int(
            "ClusterConfig",
            "n_clusters",
            self.n_clusters,
            low=2,
            high=_MAX_CLUSTERS,
            hint="; use 2 to 256 centroids per layer (16 is TF-MOT's usual choice)",
        )
        object.__setattr__(self, "n_clusters", k)
        _check_choice("ClusterConfig", "init", self.init, self.INITS)
        _check_bool("ClusterConfig", "preserve_sparsity", self.preserve_sparsity)


@dataclasses.dataclass(frozen=True)
class QuantizeConfig(_Config):
    """Uniform quantization of weights (and optionally of layer inputs).

    When a layer is also clustered, its ``k`` centroids are quantized instead of its weights, on one
    grid per layer (the codebook is shared by every channel, so ``per_channel`` then has no effect).

    Attributes:
        weight_bits: Bits per weight: 2-8 or 16.
        per_channel: One scale per output channel (else one per tensor).
        symmetric: Signed grid ``[-(2^(b-1)-1), 2^(b-1)-1] * scale`` around zero; else an affine grid
            ``(q - zero_point) * scale`` with ``q`` in ``[0, 2^b-1]`` whose zero is exact.
        activation_bits: When set (2-8 or 16), every quantized layer's input is fake-quantized
            (per-tensor affine) with ranges observed on the calibration images.
        weight_range: How each grid's range is chosen: ``"mse"`` (the default) searches clipping
            ranges at and below the largest magnitude and keeps the one with the smallest squared
            reconstruction error of the weights (as AIMET, NNCF and TensorRT do), which is never worse
            than ``"minmax"`` and far better at 2-4 bits; ``"minmax"`` spans the weights exactly.
    """

    weight_bits: int
    per_channel: bool = True
    symmetric: bool = True
    activation_bits: int | None = None
    weight_range: str = "mse"

    RANGES: ClassVar[tuple[str, ...]] = ("mse", "minmax")

    def __post_init__(self) -> None:
        b = self.weight_bits
        choices = ", ".join(map(str, WEIGHT_BITS))
        if b == 1 and not isinstance(b, bool):
            kind = (
                "symmetric 1-bit quantization has a single level (0)"
                if self.symmetric
                else "1-bit weights are not supported"
            )
            raise ConfigError(f"QuantizeConfig.weight_bits=1: {kind}; use 2 bits or more ({choices})")
        if isinstance(b, bool) or b not in WEIGHT_BITS:
            raise ConfigError(f"QuantizeConfig.weight_bits={b!r} is not supported; use one of {choices}")
        object.__setattr__(self, "weight_bits", int(b))
        _check_bool("QuantizeConfig", "per_channel", self.per_channel)
        _check_bool("QuantizeConfig", "symmetric", self.symmetric)
        _check_choice(
            "QuantizeConfig",
            "weight_range",
            self.weight_range,
            self.RANGES,
            ": minimum squared error clipping, or the full range of the weights",
        )
        a = self.activation_bits
        if a is not None:
            if isinstance(a, bool) or a not in WEIGHT_BITS:
                raise ConfigError(
                    f"QuantizeConfig.activation_bits={a!r} is not supported; use None or one of {choices}"
                )
            object.__setattr__(self, "activation_bits", int(a))

    @property
    def levels(self) -> int:
        """Number of weight levels of the grid (``2^b - 1`` symmetric, ``2^b`` affine)."""
        return 2**self.weight_bits - 1 if self.symmetric else 2**self.weight_bits


#: The augmentations fine-tuning can train on (``RecoveryConfig.finetune_augment``).
AUGMENTATIONS = (None, "augmix")

#: How batch norms behave during fine-tuning: ``batch`` normalises by each batch's statistics (training mode);
#: ``frozen`` uses the re-estimated running statistics (eval mode, no dropout either).
FINETUNE_BN = ("batch", "frozen")


@dataclasses.dataclass(frozen=True)
class RecoveryConfig(_Config):
    """Cheap accuracy recovery after compression; both steps are off by default.

    Both read the calibration images passed to :func:`~moo_compress.compress.compress`.

    Attributes:
        bn_images: Re-estimate every batch-norm layer's running statistics as the population mean
            and variance of its input over the first ``bn_images`` calibration images (a
            class-balanced prefix when the data comes from ``CalibrationData.from_dataset``), run in
            shuffled batches (0 = off). Runs after fine-tuning.
        bn_batch_size: Largest batch of that pass; the images are cut into equal batches no larger.
            Batch norms normalise each batch by its own statistics during the pass, so larger batches
            give statistics closer to the deployed (eval-mode) network's. None: as many images as
            hold the pixels of 1,024 32x32 images (1,024 CIFAR images, 21 at 224x224).
        finetune_steps: Optimizer steps of short fine-tuning (0 = off) that keeps masks, cluster
            assignments and the quantization grid (straight-through estimator); needs labels.
        finetune_lr: Adam learning rate.
        finetune_images: The training pool: the first ``finetune_images`` calibration images (a
            class-balanced prefix when the data comes from ``CalibrationData.from_dataset``); None:
            every calibration image. The search loads at least this many calibration images.
        finetune_distill: Weight of distillation from the original (uncompressed) model: the loss is
            label cross-entropy plus ``finetune_distill * T^2 * KL(teacher || student)`` on logits
            softened by ``T = finetune_temperature`` (Hinton et al.); 0 = labels only.
        finetune_temperature: The softening temperature ``T`` of distillation.
        finetune_bn: ``"batch"``: fine-tune in training mode (batch norms normalise by each batch's statistics,
            dropout active), then re-estimate; ``"frozen"``: re-estimate batch norm first (when ``bn_images``), then
            fine-tune in eval mode on those statistics (kept: the network learned with them) and without dropout,
            which trains the deployed function itself, and leaves a model already at its teacher's outputs (the
            uncompressed model under distillation alone) with nothing to learn.
        finetune_label_weight: Weight of the label cross-entropy (1 by default; 0 with distillation: learn from
            the original alone, so that the uncompressed model, the teacher itself, is left where it is).
        finetune_augment: ``"augmix"``: fine-tune on AugMix-augmented images (torchvision's ``AugMix`` with
            ``all_ops=False``, so that brightness, contrast, colour and sharpness, which overlap the benchmark
            corruptions, are left out; each image augmented on its own, seeded by the plan's seed and the
            step), to restore robustness; None: the images as they are.

    The steps run in a stated order, each on the result of the one before: fine-tuning (with
    distillation when asked), then batch-norm re-estimation (so the statistics are those of the
    fine-tuned weights), then the activation observers of a plan that quantizes activations. With
    ``finetune_bn="frozen"`` re-estimation comes first instead and fine-tuning runs on its statistics.
    """

    bn_images: int = 0
    bn_batch_size: int | None = None
    finetune_steps: int = 0
    finetune_lr: float = 1e-4
    finetune_batch_size: int = 64
    finetune_images: int | None = None
    finetune_distill: float = 0.0
    finetune_temperature: float = 4.0
    finetune_augment: str | None = None
    finetune_label_weight: float = 1.0
    finetune_bn: str = "batch"

    added_fields: ClassVar[dict[str, Any]] = {"finetune_images": None, "finetune_distill": 0.0,
                                              "finetune_temperature": 4.0, "finetune_augment": None,
                                              "finetune_label_weight": 1.0,
                                              "finetune_bn": "batch"}

    def __post_init__(self) -> None:
        for name, low in (("bn_images", 0), ("bn_batch_size", 1), ("finetune_steps", 0), ("finetune_batch_size", 1),
                          ("finetune_images", 1)):
            if name in ("bn_batch_size", "finetune_images") and getattr(self, name) is None:
                continue
            object.__setattr__(self, name, _check_int("RecoveryConfig", name, getattr(self, name), low=low))
        lr = self.finetune_lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < 1):
            raise ConfigError(f"RecoveryConfig.finetune_lr must be a number in (0, 1), got {lr!r}; try 1e-4")
        object.__setattr__(self, "finetune_lr", float(lr))
        for name, low, hint in (("finetune_distill", 0.0, "0 (labels only) or e.g. 1.0"),
                                ("finetune_temperature", None, "e.g. 4.0"),
                                ("finetune_label_weight", 0.0, "1.0, or 0 with finetune_distill > 0")):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or (value < low if low is not None else value <= 0)):
                bound = ">= 0" if low is not None else "> 0"
                raise ConfigError(f"RecoveryConfig.{name} must be a finite number {bound}, got {value!r}; try {hint}")
            object.__setattr__(self, name, float(value))
        if self.finetune_augment not in AUGMENTATIONS:
            raise ConfigError(f"RecoveryConfig.finetune_augment must be one of {AUGMENTATIONS}, got "
                              f"{self.finetune_augment!r}")
        if self.finetune_label_weight == 0 and self.finetune_distill == 0:
            raise ConfigError("RecoveryConfig.finetune_label_weight is 0 and finetune_distill is 0: fine-tuning would "
                              "have no loss; set finetune_distill > 0 (learn from the original) or the label weight "
                              "> 0")
        if self.finetune_bn not in FINETUNE_BN:
            raise ConfigError(f"RecoveryConfig.finetune_bn must be one of {FINETUNE_BN}, got {self.finetune_bn!r}")

    @property
    def enabled(self) -> bool:
        """Whether any recovery step runs."""
        return self.bn_images > 0 or self.finetune_steps > 0

    @property
    def level(self) -> str:
        """The recovery's rung on the ladder, e.g. ``bn``, ``ft100`` (labels), ``kd100`` (labels and the original),
        ``pkd100`` (the original alone); ``f`` when batch norm is frozen (``pkd100f``), ``+augmix`` with AugMix;
        ``none`` when nothing runs."""
        if self.finetune_steps:
            kind = "ft" if not self.finetune_distill else "kd" if self.finetune_label_weight else "pkd"
            return (f"{kind}{self.finetune_steps}" + ("f" if self.finetune_bn == "frozen" else "")
                    + (f"+{self.finetune_augment}" if self.finetune_augment else ""))
        return "bn" if self.bn_images else "none"

    @property
    def images_needed(self) -> int:
        """Calibration images its steps read (re-estimation's and the fine-tuning pool's; 0: none asked)."""
        pool = (self.finetune_images or 0) if self.finetune_steps else 0
        return max(self.bn_images, pool)


@dataclasses.dataclass(frozen=True)
class LayerGroup(_Config):
    """A named set of layers (module-name glob patterns) and the techniques applied to it.

    A group is self-contained: a technique left as None is off for the group's layers (it is not
    inherited from the plan's top level), so the plan's JSON fully determines the result.

    Attributes:
        name: Group name (e.g. a key of ``model_defaults(arch).layer_groups``).
        patterns: ``fnmatch`` patterns over module names (``"features.0"``, ``"layer1.*"``).
        prune: Pruning of the group's layers (``scope="global"`` ranks within the group).
        cluster: Clustering of the group's layers.
        quantize: Quantization of the group's layers.
    """

    name: str
    patterns: tuple[str, ...]
    prune: PruneConfig | None = None
    cluster: ClusterConfig | None = None
    quantize: QuantizeConfig | None = None

    _nested: ClassVar[dict[str, Any]] = {"prune": PruneConfig, "cluster": ClusterConfig, "quantize": QuantizeConfig}

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"LayerGroup.name must be a non-empty string, got {self.name!r}")
        patterns = _patterns(f"LayerGroup({self.name!r})", "patterns", self.patterns)
        if not patterns:
            raise ConfigError(f"LayerGroup({self.name!r}).patterns is empty; give at least one module-name glob")
        object.__setattr__(self, "patterns", patterns)
        for name, cls in self._nested.items():
            _check_nested(f"LayerGroup({self.name!r})", name, getattr(self, name), cls)


@dataclasses.dataclass(frozen=True)
class CompressionPlan(_Config):
    """What to do to a model: prune -> cluster -> quantize, for the whole model or per layer group.

    Layers are the Conv2d/Linear modules (or those a custom filter selects). A layer matched by one
    of ``groups`` gets that group's techniques; every other layer gets the top-level ``prune``,
    ``cluster`` and ``quantize``. Excluded layers are never touched.

    Attributes:
        prune: Pruning of the layers outside every group (global scope ranks them together).
        cluster: Clustering of the layers outside every group.
        quantize: Quantization of the layers outside every group.
        groups: Per-group settings; group patterns must not overlap.
        exclude_first_conv: Leave the first Conv2d (in module order) uncompressed.
        exclude_classifier: Leave the last Linear (in module order) uncompressed.
        exclude: Module-name glob patterns of further layers to leave uncompressed.
        recovery: Batch-norm re-estimation and fine-tuning after compression (off by default).
        seed: Seed of every random choice (k-means++ initialisation, fine-tuning batches).
    """

    prune: PruneConfig | None = None
    cluster: ClusterConfig | None = None
    quantize: QuantizeConfig | None = None
    groups: tuple[LayerGroup, ...] = ()
    exclude_first_conv: bool = False
    exclude_classifier: bool = False
    exclude: tuple[str, ...] = ()
    recovery: RecoveryConfig = dataclasses.field(default_factory=RecoveryConfig)
    seed: int = 0

    _nested: ClassVar[dict[str, Any]] = {
        "prune": PruneConfig,
        "cluster": ClusterConfig,
        "quantize": QuantizeConfig,
        "recovery": RecoveryConfig,
        "groups": (LayerGroup,),
    }

    def __post_init__(self) -> None:
        for name in ("prune", "cluster", "quantize", "recovery"):
            _check_nested("CompressionPlan", name, getattr(self, name), self._nested[name])
        if self.recovery is None:
            raise ConfigError("CompressionPlan.recovery must be a RecoveryConfig; use RecoveryConfig() for none")
        if isinstance(self.groups, (str, Mapping)) or not isinstance(self.groups, Sequence):
            raise ConfigError(
                "CompressionPlan.groups must be a sequence of LayerGroup; "
                "use CompressionPlan.for_layer_groups(...) to build one from a name -> patterns mapping"
            )
        groups = tuple(self.groups)
        for g in groups:
            if not isinstance(g, LayerGroup):
                raise ConfigError(
                    f"CompressionPlan.groups must hold LayerGroup objects, got {type(g).__name__}; "
                    "build them with LayerGroup(name, patterns, prune=..., ...)"
                )
        names = [g.name for g in groups]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"CompressionPlan.groups repeats the group name(s) {dup}; give every group its own name")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "exclude", _patterns("CompressionPlan", "exclude", self.exclude))
        _check_bool("CompressionPlan", "exclude_first_conv", self.exclude_first_conv)
        _check_bool("CompressionPlan", "exclude_classifier", self.exclude_classifier)
        object.__setattr__(self, "seed", _check_int("CompressionPlan", "seed", self.seed, low=0))

    def configs_for(self, group: str | None) -> tuple[PruneConfig | None, ClusterConfig | None, QuantizeConfig | None]:
        """The (prune, cluster, quantize) of group ``group``, or of the top level for None."""
        if group is None:
            return self.prune, self.cluster, self.quantize
        for g in self.groups:
            if g.name == group:
                return g.prune, g.cluster, g.quantize
        raise ConfigError(f"the plan has no group {group!r}{_close(group, [g.name for g in self.groups])}")

    @property
    def is_identity(self) -> bool:
        """True when the plan compresses nothing and recovers nothing."""
        settings = [self.prune, self.cluster, self.quantize]
        settings += [c for g in self.groups for c in (g.prune, g.cluster, g.quantize)]
        return all(c is None for c in settings) and not self.recovery.enabled

    @property
    def quantizes_activations(self) -> bool:
        """True when the plan rounds layer inputs (``activation_bits``, at the top level or in a group)."""
        quantizers = [self.quantize] + [g.quantize for g in self.groups]
        return any(q is not None and q.activation_bits for q in quantizers)

    @property
    def needs_calibration(self) -> bool:
        """True when :func:`~moo_compress.compress.compress` needs calibration images for the plan: its
        recovery runs (batch-norm re-estimation or fine-tuning) or it quantizes activations."""
        return self.recovery.enabled or self.quantizes_activations

    def label(self) -> str:
        """A short human-readable name, e.g. ``P50-C16-Q8`` (``G(...)`` per group).

        Pruning suffixes: ``s`` structured, ``r`` structured of removable layers only
        (``removable_only``), ``l`` layer scope (``P50rl``).
        """

        def part(p: PruneConfig | None, c: ClusterConfig | None, q: QuantizeConfig | None) -> str:
            bits = []
            if p is not None:
                bits.append(
                    f"P{100 * p.sparsity:g}"
                    + ("r" if p.removable_only else "s" if p.structured else "")
                    + ("l" if p.scope == "layer" else "")
                )
            if c is not None:
                bits.append(f"C{c.n_clusters}")
            if q is not None:
                bits.append(f"Q{q.weight_bits}" + (f"A{q.activation_bits}" if q.activation_bits else ""))
            return "-".join(bits) or "none"

        text = (
            part(self.prune, self.cluster, self.quantize)
            if not self.groups or any(c is not None for c in (self.prune, self.cluster, self.quantize))
            else ""
        )
        groups = ",".join(f"{g.name}:{part(g.prune, g.cluster, g.quantize)}" for g in self.groups)
        label = " ".join(t for t in (text, f"G({groups})" if groups else "") if t) or "none"
        return "recovery only" if label == "none" and self.recovery.enabled else label

    @classmethod
    def for_layer_groups(
        cls,
        layer_groups: Mapping[str, Sequence[str]],
        settings: Mapping[str, Mapping[str, Any]],
        **plan_options: Any,
    ) -> CompressionPlan:
        """Builds a per-group plan from a group -> patterns mapping (``model_defaults(arch).layer_groups``).

        Args:
            layer_groups: Group name -> module-name glob patterns.
            settings: Group name -> ``{"prune": PruneConfig | None, "cluster": ..., "quantize": ...}``;
                groups left out are not compressed (unless the top-level configs in
                ``plan_options`` cover them).
            **plan_options: Further :class:`CompressionPlan` fields (``exclude_first_conv``, ``seed``...).

        Raises:
            ConfigError: if ``settings`` names a group that ``layer_groups`` lacks, or a key other
                than prune/cluster/quantize.
        """
        unknown = [g for g in settings if g not in layer_groups]
        if unknown:
            raise ConfigError(
                f"unknown layer group {unknown[0]!r}{_close(unknown[0], list(layer_groups))} "
                f"(groups: {', '.join(layer_groups)})"
            )
        groups = []
        for name, patterns in layer_groups.items():
            if name not in settings:
                continue
            techniques = dict(settings[name])
            bad = [k for k in techniques if k not in ("prune", "cluster", "quantize")]
            if bad:
                raise ConfigError(f"settings[{name!r}] has unknown key {bad[0]!r}; use prune, cluster and quantize")
            groups.append(LayerGroup(name, tuple(patterns), **techniques))
        return cls(groups=tuple(groups), **plan_options)
