"""Two finished runs side by side, e.g. a search without and with recovery as a fidelity (``--promote 0``):
each run's reported front, with its clean and mean-corruption-accuracy deltas against the original model on
the report split (paired 95% intervals), and the runs' search times. Writes the ``recovery-fidelity-<arch>``
section of RESULTS.md.

Usage:
    python benchmarks/compare_recovery_runs.py outputs/vgg19-nopromote outputs/vgg19-vgg19-seed0 \\
        --names "re-estimation only (--promote 0)" "default (promotion to pkd100f)" --note "..."
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

from moo_compress.report import load_run  # noqa: E402


def _claim(row: object, name: str) -> str:
    get = row.get  # type: ignore[attr-defined]
    return f"{get(f'final/{name}'):+.2f} [{get(f'final/{name}_low'):+.2f}, {get(f'final/{name}_high'):+.2f}]"


def front_table(folder: str, name: str) -> list[str]:
    """One run's reported front as table rows."""
    run = load_run(folder)
    front = run.pareto
    info = run.config["run"]
    baseline = run.knees.get("baseline", {})
    promotion = baseline.get("promotion") or {}
    lines = [f"**{name}** (`{folder}`): the search took {info.get('seconds', 0) / 60:.1f} min"
             + (f", of which the promotion stage {promotion['seconds'] / 60:.1f} min" if promotion else "")
             + f"; {len(front)} plans on the reported front.", "",
             "| plan | recovery | ratio | clean vs original | mean corruption acc. vs original | recommended as |",
             "|---|---|---|---|---|---|"]
    picks: dict[str, list[str]] = {}
    for pick in run.knees.get("recommendations", []):
        picks.setdefault(str(pick.get("label")), []).append(str(pick.get("method", pick.get("name", ""))))
    for _, row in front.iterrows():
        level = row.get("recovery_level", "bn")
        lines.append(f"| {row['label']} | {level} | {row['final/compression_ratio']:.1f}x | "
                     f"{_claim(row, 'orig_clean_delta')} | {_claim(row, 'orig_mca_delta')} | "
                     f"{', '.join(sorted(set(picks.get(str(row['label']), [])))) } |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs=2, help="two run folders")
    parser.add_argument("--names", nargs=2, default=["first", "second"])
    parser.add_argument("--note", default="", help="a paragraph placed before the tables")
    args = parser.parse_args(argv)
    arch = load_run(args.runs[0]).config["run"].get("arch")
    body = [args.note, ""] if args.note else []
    for folder, name in zip(args.runs, args.names, strict=True):
        body += front_table(folder, name) + [""]
    body.append("Deltas against the original model (no recovery), on the report split (150 images per "
                "corruption and severity, every report image for clean accuracy), paired 95% intervals.")
    write_section(f"recovery-fidelity-{arch}", f"Recovery as a fidelity on {arch}: side by side (issue 24)",
                  "\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
