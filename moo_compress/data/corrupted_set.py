"""The corrupted test images an evaluation uses: :class:`CorruptedSet`, whatever they were read from.

Images are read when a (corruption, severity) is asked for, not when the set is made: a memory map of
a ``.npy`` costs nothing to open, but a PNG-compressed cache or an ImageNet-C folder is decoded on access,
one (corruption, severity) at a time, so a set larger than memory can be evaluated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from moo_compress.errors import ConfigError

__all__ = ["CorruptedSet", "LazyImages"]

Key = tuple[str, int]


class LazyImages(Mapping[Key, np.ndarray]):
    """A read-only mapping ``(corruption, severity) -> images`` whose values are produced on access.

    Args:
        loaders: For every key, a function returning its uint8 ``(N, H, W, 3)`` images. It is called on
            every access (nothing is kept), so a decoded set is freed once its user drops it.
    """

    def __init__(self, loaders: Mapping[Key, Callable[[], np.ndarray]]) -> None:
        self._loaders = dict(loaders)

    def __getitem__(self, key: Key) -> np.ndarray:
        return self._loaders[key]()

    def __iter__(self) -> Iterator[Key]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


@dataclass(frozen=True, eq=False)
class CorruptedSet:
    """The corrupted images of a fixed set of test images, for every (corruption, severity) asked for.

    Every (corruption, severity) holds the same images (``indices`` of the source, in that order), so
    accuracies of different models on a CorruptedSet are paired comparisons.

    Attributes:
        labels: int64 labels of the images.
        indices: Positions of the images in the clean test set (= in each severity block of a release).
        corruptions: Corruption names, in reference order.
        severities: Severities, increasing.
        source: ``release <folder>`` or ``generated <cache folder>``.
        fingerprint: Digest naming exactly these images: for a ``.npy`` release, of their bytes; for a
            release folder, of the files' names, sizes and times; for a generated set, of the generator
            version, parameter set, seed, clean-set fingerprint and indices.
        params: Name of the corruption parameter set (``cifar``, ``tinyimagenet``, ``imagenet``): the one
            generated with, recorded in a generated release, or the one an official release was made with.
    """

    labels: np.ndarray
    indices: np.ndarray
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    source: str
    fingerprint: str
    _images: Mapping[Key, np.ndarray] = field(repr=False)
    params: str = "cifar"

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def keys(self) -> list[Key]:
        """Every (corruption, severity), corruptions in reference order, then severities."""
        return [(c, s) for c in self.corruptions for s in self.severities]

    def images(self, corruption: str, severity: int) -> np.ndarray:
        """The uint8 ``(N, H, W, 3)`` images of one corruption and severity (possibly a read-only memory
        map; decoded on each call when the source is compressed)."""
        try:
            return self._images[(corruption, severity)]
        except KeyError:
            raise ConfigError(
                f"this corrupted set holds corruptions {list(self.corruptions)} at severities {list(self.severities)}, "
                f"not ({corruption!r}, {severity!r})"
            ) from None

    def __iter__(self) -> Iterator[tuple[str, int, np.ndarray]]:
        """Yields ``(corruption, severity, images)``, reading one (corruption, severity) at a time."""
        for corruption, severity in self.keys():
            yield corruption, severity, self._images[(corruption, severity)]

    def map(self, transform: Callable[[np.ndarray], np.ndarray]) -> CorruptedSet:
        """The same set with ``transform`` applied to the images of a (corruption, severity) when they are
        read (e.g. ``lambda x: resize_images(x, (224, 224))``); the fingerprint is kept, since it names
        the corrupted images, not what is done with them afterwards. Nothing is computed now."""
        loaders = {key: (lambda key=key: transform(self._images[key])) for key in self._images}
        return dataclasses.replace(self, _images=LazyImages(loaders))
