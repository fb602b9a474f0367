"""How each recommendation method is drawn and named in figures and tables."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MethodStyle", "METHOD_STYLES", "method_style"]


@dataclass(frozen=True)
class MethodStyle:
    """Marker, colour and short name of one recommendation method.

    Attributes:
        marker: Matplotlib marker.
        colour: Matplotlib colour.
        short: A few words for legends, table cells and heat-map rows.
    """

    marker: str
    colour: str
    short: str


#: Recommendation method (``knees.json``) -> style.
METHOD_STYLES = {
    "nbi_knee": MethodStyle("D", "tab:red", "knee"),
    "closest_to_ideal": MethodStyle("P", "tab:purple", "closest to ideal"),
    "high_tradeoff": MethodStyle("X", "tab:orange", "high trade-off"),
    "most_robust_min_ratio": MethodStyle("v", "tab:green", "most robust at min. ratio"),
    "smallest_within_drop": MethodStyle("s", "tab:brown", "smallest within acc. drop"),
}


def method_style(method: str) -> MethodStyle:
    """The style of ``method``; an unknown (user-added) method gets a black circle and its own name."""
    return METHOD_STYLES.get(method, MethodStyle("o", "black", method.replace("_", " ")))
