"""Writes one benchmark's section of ``benchmarks/RESULTS.md``, leaving the other sections alone.

Each section sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers and records the
command that produced it, the machine and the date, so results can be reproduced.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_HEADER = (
    "# Benchmark results\n\n"
    "Each section is rewritten by the script named in it; timings are ratios measured in the same run\n"
    "(the machine is shared and noisy, so absolute numbers vary between runs).\n"
)


def machine() -> str:
    """A one-line description of the machine the benchmark ran on."""
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads{gpu}")


def write_section(name: str, title: str, body: str) -> None:
    """Replaces (or appends) section ``name`` of RESULTS.md with ``body`` under heading ``title``."""
    command = "python " + shlex.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    today = _dt.date.today().isoformat()
    block = (
        f"<!-- {name}:start -->\n## {title}\n\nCommand: `{command}`  \nMachine: {machine()}; {today}\n\n"
        f"{body.strip()}\n<!-- {name}:end -->"
    )
    text = RESULTS.read_text() if RESULTS.exists() else _HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(block)
