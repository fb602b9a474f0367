"""Generating a corruption release: the CIFAR-C ``.npy`` layout written for any uint8 test set.

The layout is :mod:`~moo_compress.data.releases`'s, plus the manifest (:data:`~moo_compress.data.releases.MANIFEST`)
recording how the release was made and which files are complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from moo_compress.data.corruption_jobs import (
    Job,
    create_npy,
    default_workers,
    generation_key,
    progress_bar,
    run_jobs,
    sync_file,
)
from moo_compress.data.corruptions import (
    ALL_CORRUPTIONS,
    ParamSet,
    check_severities,
    resolve_corruptions,
    resolve_param_set,
)
from moo_compress.data.corruptions.api import check_corruption_images
from moo_compress.data.datasets import ArrayDataset
from moo_compress.data.npy_files import npy_header
from moo_compress.data.releases import MANIFEST
from moo_compress.fileio import atomic_save_npy, atomic_write_json, make_readable, sha256_file, stable_hash

__all__ = ["generate_release"]


def _labels_dtype(labels: np.ndarray) -> np.dtype:
    return np.dtype(np.uint8) if labels.size == 0 or int(labels.max()) < 256 else np.dtype(np.int64)


def generate_release(
    clean: ArrayDataset,
    out_dir: str | os.PathLike[str],
    *,
    corruptions: str | Iterable[str] | None = None,
    severities: int | Iterable[int] | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    params: str | ParamSet | None = None,
) -> Path:
    """Writes the release layout for ``clean`` (any uint8 ``(N, H, W, 3)`` test set) into ``out_dir``.

    Each ``<corruption>.npy`` is filled through a memory map in a hidden temporary file that is synced
    and renamed once complete, so the full set is never held in RAM and an interrupted run never leaves
    a file that looks complete. The manifest lists the finished files; a rerun with the same settings
    skips them. Images equal ``corrupt(clean.images, name, s, seed=seed)`` whatever ``workers`` is.

    Args:
        clean: The clean images and labels, in the order the release keeps.
        out_dir: Output folder (created).
        corruptions: Names or groups (``all``, ``benchmark``, ``extra``, a family); default all 19.
        severities: Severities to write, in blocks in increasing order; default 1..5 (the official layout).
        seed: Corruption seed.
        workers: Processes; default one per available CPU. Workers are spawned, so a script that calls
            this with more than one worker needs the usual ``if __name__ == "__main__":`` guard.
        progress: Show a progress bar.
        params: Corruption parameter set (``cifar``, ``tinyimagenet``, ``imagenet``, a ParamSet); None
            for the set of the images' size. Recorded in the manifest.

    Returns:
        ``out_dir``.
    """
    names = resolve_corruptions(corruptions)
    sevs = check_severities(severities)
    check_corruption_images(clean.images)
    shape = tuple(int(v) for v in clean.images.shape[1:])
    pset = resolve_param_set(params, *shape[:2])
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    key = generation_key(clean.fingerprint, stable_hash([len(clean)]), seed, sevs, pset, shape)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    expected_bytes = None
    complete = []
    digests: dict[str, str] = {}
    if manifest.get("key") == key:
        for name in manifest.get("complete", []):
            path = out / f"{name}.npy"
            if path.is_file():
                expected_bytes = expected_bytes or npy_header(path)[2] + len(sevs) * len(clean) * int(np.prod(shape))
                recorded = manifest.get("sha256", {}).get(name)
                # reused only when it still holds the bytes written (size first: it is free)
                if path.stat().st_size == expected_bytes and recorded == sha256_file(path):
                    complete.append(name)
                    digests[name] = recorded
    manifest = {"key": key, "dataset": clean.name, "source": clean.source, "severities": list(sevs), "seed": seed,
                "params": pset.name, "shape": list(shape), "complete": complete, "sha256": digests,
                "images": len(clean)}
    labels = np.tile(clean.labels, len(sevs))
    atomic_save_npy(out / "labels.npy", labels.astype(_labels_dtype(labels)))
    atomic_write_json(manifest_path, manifest)

    todo = [name for name in names if name not in complete]
    temps: dict[Path, str] = {}
    jobs = []
    for name in todo:
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.npy.", suffix=".tmp")
        os.close(fd)
        create_npy(Path(tmp), len(sevs) * len(clean), shape)
        temps[Path(tmp)] = name
        jobs += [Job(name, s, Path(tmp), row=i * len(clean), params=pset) for i, s in enumerate(sevs)]

    def target_done(tmp: Path) -> None:
        name = temps.pop(tmp)
        sync_file(tmp)
        make_readable(tmp)
        manifest["sha256"][name] = sha256_file(tmp)
        os.replace(tmp, out / f"{name}.npy")
        manifest["complete"] = [n for n in ALL_CORRUPTIONS if n in set(manifest["complete"]) | {name}]
        atomic_write_json(manifest_path, manifest)

    workers = default_workers() if workers is None else max(1, int(workers))
    try:
        with progress_bar(len(jobs) * len(clean), f"corrupting {clean.name}", progress) as bar:
            run_jobs(clean.images, jobs, seed=seed, workers=workers, scratch=out,
                     on_progress=bar.update, on_target_done=target_done)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return out
