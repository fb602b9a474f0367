"""What the reference checks assert about mean absolute pixel changes, shared by the 64- and 224-pixel tests."""

from __future__ import annotations

import numpy as np
import pytest

__all__ = ["DETERMINISTIC", "TOLERANCE", "mean_change", "assert_like_reference", "assert_equal_to_reference"]

#: Corruptions that draw no random numbers: these must equal the reference image for image.
DETERMINISTIC = ("defocus_blur", "zoom_blur", "gaussian_blur", "brightness", "contrast", "pixelate",
                 "jpeg_compression", "saturate")
#: Allowed relative difference between our mean change and the reference's, per severity.
TOLERANCE = 0.25
#: A reference step counts as a distinct severity when its mean change grows by more than this fraction.
DISTINCT = 0.02


def mean_change(corrupted: np.ndarray, clean: np.ndarray) -> float:
    """Mean absolute pixel change, in 0..255 levels."""
    return float(np.abs(corrupted.astype(np.int16) - clean.astype(np.int16)).mean())


def assert_like_reference(ours: list[float], reference: list[float]) -> None:
    """Every severity within 25% of the reference's mean change, and strictly stronger than the one
    before wherever the reference's is (by more than 2%, so that sampling noise is not a step)."""
    for severity, (mine, theirs) in enumerate(zip(ours, reference, strict=True), start=1):
        assert mine == pytest.approx(theirs, rel=TOLERANCE), (severity, ours, reference)
    for step in range(len(reference) - 1):
        if reference[step + 1] > (1 + DISTINCT) * reference[step]:
            assert ours[step + 1] > ours[step], (step + 2, ours, reference)


def assert_equal_to_reference(ours: np.ndarray, reference: np.ndarray) -> None:
    """Equal up to one level where summation order differs (at most 1% of values)."""
    difference = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    assert difference.max() <= 1 and np.mean(difference == 0) >= 0.99, (difference.max(), np.mean(difference == 0))
