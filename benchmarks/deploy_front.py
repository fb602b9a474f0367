"""Writes the front of a `--space deploy` search into RESULTS.md (section "deploy-search-<arch>").

    python -m moo_compress.search --arch resnet20 --space deploy
    python benchmarks/deploy_front.py outputs/resnet20-deploy_cifar_resnet-seed0

The table comes from the run folder's ``pareto.csv``, ``knees.json`` and ``config.yaml``: report-split
accuracies with their paired 95% intervals against the reference, batch-1 latency with its
interquartile range and the speed-up over the reference timed in the same rounds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402

from moo_compress.report.rundata import load_run  # noqa: E402


def _interval(row: object, name: str) -> str:
    return f"{row[f'final/{name}']:+.1f} [{row[f'final/{name}_low']:+.1f}, {row[f'final/{name}_high']:+.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the run folder of a deploy search")
    args = parser.parse_args()
    run = load_run(args.run)
    latency = run.knees.get("latency") or {}
    picked = {r["label"] for r in run.knees["recommendations"] if r.get("label")}
    deployed = {r["label"]: r["onnx"] for r in run.knees["recommendations"] if r.get("onnx")}
    base = run.knees["baseline"]
    lines = [
        f"Run: `python -m moo_compress.search --arch {run.config['run']['arch']} "
        f"--space {run.config['space']['name']}` "
        f"({run.config['run']['seconds'] / 60:.1f} min; {len(run.evaluations)} distinct plans). Latency: "
        f"{latency.get('runtime_name')} on {latency.get('hardware')}; {latency.get('measured')}. Reference "
        f"(uncompressed after the same recovery): {base['final']['clean_accuracy']:.2f}% clean on "
        f"{base['report']['n_clean']:,} report images, {latency.get('reference_ms'):.3g} ms at batch 1.",
        "",
        "| plan | ratio (x) | clean Δ (points) | mCA Δ (points) | batch 1 (ms) [IQR] | speed-up b1 [IQR] | "
        "speed-up b64 | faster beyond the spread | ONNX top-1 vs PyTorch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in run.pareto.iterrows():
        faster = "yes" if r["latency_speedup_low"] > 1 else ("slower" if r["latency_speedup_high"] < 1 else "tie")
        onnx = deployed.get(r["label"])
        check = f"{onnx['accuracy']:.2f}% vs {onnx['torch_accuracy']:.2f}%" if onnx else ""
        lines.append(
            f"| `{r['label']}`{' (recommended)' if r['label'] in picked else ''} "
            f"| {r['final/compression_ratio']:.2f} | "
            f"{_interval(r, 'clean_delta')} | {_interval(r, 'mca_delta')} | {r['latency_ms']:.3g} "
            f"[{r['latency_low_ms']:.3g}, {r['latency_high_ms']:.3g}] | {r['latency_speedup']:.2f} "
            f"[{r['latency_speedup_low']:.2f}, {r['latency_speedup_high']:.2f}] | {r['latency_batch_speedup']:.2f} | "
            f"{faster} | {check} |")
    lines += ["", "Intervals: paired 95% over the report images; latency spread: interquartile range of the timed "
              "runs (speed-up: of the per-round ratios against the reference). A speed-up range that holds 1 is a tie."]
    arch = run.config["run"]["arch"]
    write_section(f"deploy-search-{arch}", f"Deploy search on {arch}: latency as a fourth objective (issue 16)",
                  "\n".join(lines))


if __name__ == "__main__":
    main()
