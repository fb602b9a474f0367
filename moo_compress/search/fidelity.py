"""The fidelity of a search: how many test images each candidate is measured on (see :mod:`.racing`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_compress.compress import RecoveryConfig
from moo_compress.errors import ConfigError

__all__ = ["FIDELITY_MODES", "Fidelity", "Promotion"]

#: Fidelity modes of a search space (``fidelity.mode``).
FIDELITY_MODES = ("racing", "fixed")


@dataclass(frozen=True)
class Fidelity:
    """How candidates are measured during the search (the ``fidelity`` block of a search space).

    Attributes:
        mode: ``racing`` (candidates climb ``rungs`` until confidently dominated) or ``fixed`` (every
            candidate on ``images``).
        rungs: Images per (corruption, severity), cumulative and increasing, of the racing rungs (clean
            accuracy on ``clean_multiple`` times as many clean images). The default tops out at the
            previous fixed screening (40), so a plan that survives costs what it cost before racing;
            ``benchmarks/bench_fidelity.py`` compares ladders.
        images: Images per (corruption, severity) of the fixed mode.
        confidence: Confidence that a stopped candidate was truly dominated by the plan that stopped it
            (see :mod:`~moo_compress.search.racing`).
        clean_multiple: Clean images per corrupted image of a rung (clean accuracy decides dominance too,
            and one clean image costs as much as one image of a single corruption cell).
    """

    mode: str = "racing"
    rungs: tuple[int, ...] = (10, 20, 40)
    images: int = 40
    confidence: float = 0.95
    clean_multiple: int = 1

    def __post_init__(self) -> None:
        if self.mode not in FIDELITY_MODES:
            raise ConfigError(f"fidelity.mode must be one of {list(FIDELITY_MODES)}, got {self.mode!r}")
        rungs = tuple(self.rungs)
        if not rungs or any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1 for r in rungs) \
                or any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
            raise ConfigError(f"fidelity.rungs must be increasing positive image counts (e.g. [10, 20, 40]), "
                              f"got {list(rungs)}")
        object.__setattr__(self, "rungs", tuple(int(r) for r in rungs))
        if isinstance(self.images, bool) or not isinstance(self.images, (int, np.integer)) or self.images < 1:
            raise ConfigError(f"fidelity.images must be a positive integer, got {self.images!r}")
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, (int, float)) \
                or not 0.5 < float(self.confidence) < 1.0:
            raise ConfigError(f"fidelity.confidence must be in (0.5, 1), e.g. 0.95; got {self.confidence!r}")
        if isinstance(self.clean_multiple, bool) or not isinstance(self.clean_multiple, (int, np.integer)) \
                or self.clean_multiple < 1:
            raise ConfigError(f"fidelity.clean_multiple must be a positive integer, got {self.clean_multiple!r}")

    @property
    def ladder(self) -> tuple[int, ...]:
        """The rungs the search uses: ``rungs`` when racing, ``(images,)`` when fixed."""
        return self.rungs if self.mode == "racing" else (int(self.images),)

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-able form."""
        return {"mode": self.mode, "rungs": list(self.rungs), "images": int(self.images),
                "confidence": float(self.confidence), "clean_multiple": int(self.clean_multiple)}


@dataclass(frozen=True)
class Promotion:
    """The expensive recovery level of a space (``promote`` in its YAML) and how many plans may get it.

    Attributes:
        plans: At most this many contenders are promoted (0: off).
        recovery: The expensive level, complete (the space's ``recovery`` with ``promote.recovery``'s
            fields on top).
    """

    plans: int = 0
    recovery: RecoveryConfig | None = None

    @property
    def enabled(self) -> bool:
        """Whether any plan is promoted."""
        return self.plans > 0 and self.recovery is not None

    @classmethod
    def parse(cls, spec: Any, base: RecoveryConfig) -> Promotion:
        """The ``promote`` section of a space (``{plans: N, recovery: {...}}``) over the space's ``recovery``.

        Raises:
            ConfigError: naming the offending key.
        """
        if spec is None:
            return cls()
        if not isinstance(spec, dict) or set(spec) - {"plans", "recovery"}:
            raise ConfigError(f"promote must be a mapping with keys plans and recovery, got {spec!r}")
        plans = spec.get("plans", 4)
        if isinstance(plans, bool) or not isinstance(plans, int) or plans < 0:
            raise ConfigError(f"promote.plans must be an integer >= 0, got {plans!r}")
        fields = spec.get("recovery") or {}
        valid = [f.name for f in dataclasses.fields(RecoveryConfig)]
        unknown = [k for k in fields if k not in valid]
        if not isinstance(fields, dict) or unknown:
            raise ConfigError(f"promote.recovery: unknown key(s) {unknown or fields!r}; valid keys: {', '.join(valid)}")
        recovery = dataclasses.replace(base, **fields)
        if recovery.finetune_steps == 0:
            raise ConfigError("promote.recovery must fine-tune (finetune_steps > 0): it is the expensive level")
        return cls(plans, recovery)

    def to_dict(self) -> dict[str, Any]:
        """The section as a run's ``config.yaml`` holds it."""
        return {"plans": self.plans, "recovery": self.recovery.to_dict() if self.recovery is not None else None}
