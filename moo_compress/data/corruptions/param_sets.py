"""Parameter sets: which recipe's numbers corrupt a batch, chosen by the size the images are corrupted at.

The reference publishes the same 19 corruptions with three parameter tables, each written for one
image size:

=============  ======  ===========================  ==================================================
set            native  reference                    chosen (by default) for a shorter side of
=============  ======  ===========================  ==================================================
cifar          32      make_cifar_c.py              up to 45 pixels
tinyimagenet   64      make_tinyimagenet_c.py       46 to 119 pixels
imagenet       224     make_imagenet_c.py           120 pixels and more
=============  ======  ===========================  ==================================================

The thresholds are the geometric means of neighbouring native sizes (sqrt(32 x 64) = 45.3, sqrt(64 x 224)
= 119.7): blur radii, zooms and displacements are in pixels, so a set's strength scales with the ratio of
image size to native size, and the nearest set on that scale is the one chosen. An explicit set
(``params="imagenet"``, ``--corruption-params imagenet``) overrides the choice.

At a size other than its native one a set's numbers are used as they are (the ``imagecorruptions``
package does the same with the ImageNet-C numbers at any size), except where the recipe itself is tied
to the image size:

- elastic_transform's (alpha, sigma, affine jitter), which the recipe writes as multiples of the image
  size, are scaled by ``shorter side / native size``;
- frost crops a window of the image's own height and width from a texture resized by the set's factor
  (0.2, 0.3, 1); a texture that would be too small for that window is instead resized to 1.1 times the
  smallest size that holds it (bicubic), as ``imagecorruptions`` does;
- fog's plasma fractal is the next power of two of the longer side, cropped to the image;
- glass blur's pixel scan, pixelate's sizes and the zoom of zoom_blur and snow follow the height and width.

Non-square images are corrupted along each axis as above.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any

from moo_compress.data.corruptions import params_imagenet, params_tinyimagenet
from moo_compress.data.corruptions.params import ALL_CORRUPTIONS, GENERATOR_VERSION, SPECS, CorruptionSpec
from moo_compress.data.corruptions.params import params_fingerprint as _table_fingerprint
from moo_compress.errors import ConfigError, UnknownNameError
from moo_compress.fileio import stable_hash

__all__ = [
    "DEFAULT_PARAM_SET",
    "MIN_SIDE",
    "PARAM_SETS",
    "SELECTION",
    "ParamSet",
    "get_param_set",
    "list_param_sets",
    "param_set_for_size",
    "resolve_param_set",
]

#: The set of 32 x 32 CIFAR images; its fingerprint is the one generated sets were keyed on before
#: other sets existed, so caches written then stay valid.
DEFAULT_PARAM_SET = "cifar"

#: Smallest height or width accepted: smaller images leave glass blur's scan and the blur kernels no room.
MIN_SIDE = 16


@dataclass(frozen=True)
class ParamSet:
    """One recipe's parameters for the 19 corruptions.

    Attributes:
        name: ``cifar``, ``tinyimagenet`` or ``imagenet``.
        size: The image size (pixels, square) the recipe is written for.
        source: The reference script the numbers come from.
        specs: One :class:`CorruptionSpec` per corruption, in the reference order.
        frost_scale: Factor the frost textures are resized by before the random crop.
    """

    name: str
    size: int
    source: str
    specs: tuple[CorruptionSpec, ...]
    frost_scale: float

    def __post_init__(self) -> None:
        if tuple(s.name for s in self.specs) != ALL_CORRUPTIONS:
            raise ValueError(f"parameter set {self.name!r} must list the {len(ALL_CORRUPTIONS)} corruptions in order")

    @functools.cached_property
    def params(self) -> dict[str, CorruptionSpec]:
        """The specs by corruption name."""
        return {spec.name: spec for spec in self.specs}

    def spec(self, name: str) -> CorruptionSpec:
        """The spec of corruption ``name``.

        Raises:
            UnknownNameError: for an unknown name (with close matches).
        """
        try:
            return self.params[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), ALL_CORRUPTIONS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(f"unknown corruption {name!r}{hint} (valid: {', '.join(ALL_CORRUPTIONS)})") from None

    def param(self, name: str, severity: int) -> Any:
        """The table's parameter of ``name`` at ``severity`` (1..5)."""
        return self.spec(name).param(severity)

    def hook_param(self, name: str, severity: int, height: int, width: int) -> Any:
        """The parameter the corruption's implementation receives for images of ``height`` x ``width``.

        The table's value, except where the recipe ties it to the image size (module docstring):
        elastic_transform's pixel values are scaled by ``min(height, width) / size`` (unchanged at the
        native size), and frost's ``(a, b)`` gains the texture factor: ``(a, b, frost_scale)``.
        """
        value = self.param(name, severity)
        if name == "elastic_transform":
            side = min(height, width)
            return value if side == self.size else tuple(v * side / self.size for v in value)
        if name == "frost":
            return (*value, self.frost_scale)
        return value

    def fingerprint(self) -> str:
        """A digest of the generator version, this table and the set's size-dependent settings."""
        if self.name == DEFAULT_PARAM_SET and self.specs == SPECS:
            return _table_fingerprint(self.specs)  # as before parameter sets existed (see DEFAULT_PARAM_SET)
        table = [[s.name, s.family, s.benchmark, list(s.params)] for s in self.specs]
        return stable_hash([GENERATOR_VERSION, self.name, self.size, self.frost_scale, table])


PARAM_SETS: dict[str, ParamSet] = {
    p.name: p
    for p in (
        ParamSet("cifar", 32, "make_cifar_c.py", SPECS, 0.2),
        ParamSet("tinyimagenet", params_tinyimagenet.SIZE, "make_tinyimagenet_c.py", params_tinyimagenet.SPECS,
                 params_tinyimagenet.FROST_SCALE),
        ParamSet("imagenet", params_imagenet.SIZE, "make_imagenet_c.py", params_imagenet.SPECS,
                 params_imagenet.FROST_SCALE),
    )
}

#: ``(largest shorter side, set name)`` in increasing order; the first row whose bound holds is chosen
#: (``None``: no bound). See the module docstring for why these bounds.
SELECTION: tuple[tuple[int | None, str], ...] = ((45, "cifar"), (119, "tinyimagenet"), (None, "imagenet"))


def list_param_sets() -> list[str]:
    """Names of the parameter sets, smallest native size first."""
    return list(PARAM_SETS)


def get_param_set(name: str) -> ParamSet:
    """The set called ``name``.

    Raises:
        UnknownNameError: for an unknown name; the message lists close matches and the valid names.
    """
    try:
        return PARAM_SETS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(PARAM_SETS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown corruption parameter set {name!r}{hint} "
                               f"(valid: {', '.join(PARAM_SETS)})") from None


def param_set_for_size(height: int, width: int) -> ParamSet:
    """The set chosen for images of ``height`` x ``width`` pixels (by the shorter side; see :data:`SELECTION`)."""
    side = min(int(height), int(width))
    for bound, name in SELECTION:
        if bound is None or side <= bound:
            return PARAM_SETS[name]
    raise AssertionError("SELECTION ends with an unbounded row")


def resolve_param_set(params: str | ParamSet | None, height: int, width: int) -> ParamSet:
    """``params`` as a :class:`ParamSet`: a set's name, a set, or None for the set chosen by size.

    Raises:
        UnknownNameError: for an unknown set name.
        ConfigError: for anything other than a name, a ParamSet or None.
    """
    if params is None:
        return param_set_for_size(height, width)
    if isinstance(params, ParamSet):
        return params
    if isinstance(params, str):
        return get_param_set(params)
    raise ConfigError(f"params must be a parameter set name ({', '.join(PARAM_SETS)}), a ParamSet or None; "
                      f"got {type(params).__name__}")
