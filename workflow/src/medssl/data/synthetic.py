"""A *synthetic* bone-marrow cytology dataset (:func:`generate_synthetic_marrow`), the demo's data.

The images are not real patient data: they are procedurally drawn single white-blood-cell crops
(:mod:`medssl.data.marrow_cells`) whose classes differ by morphology -- cell size, nucleus
size/shape/position, cytoplasm colour, granules and chromatin texture -- with realistic nuisance
(rotation, scale, stain shifts, blur, noise, debris, red cells, neighbouring cells).  It exists so
the whole pipeline (DINO pretraining, frozen embeddings, few-label classifiers) can be run, tested
and demonstrated without downloading a medical dataset.  Results on it say nothing about clinical
performance.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medssl.data.errors import DatasetError
from medssl.data.manifests import read_manifest
from medssl.data.marrow_cells import render_cell

SYNTHETIC_MARROW_CLASSES: list[str] = [
    "segmented_neutrophil",
    "lymphocyte",
    "myeloblast",
    "band_neutrophil",
    "monocyte",
    "plasma_cell",
    "eosinophil",
    "basophil",
]

# Long-tailed, roughly like real marrow differential counts (600 / 25 = 24x).
SYNTHETIC_MARROW_DEFAULT_COUNTS: dict[str, int] = {
    "segmented_neutrophil": 600,
    "lymphocyte": 400,
    "myeloblast": 250,
    "band_neutrophil": 150,
    "monocyte": 100,
    "plasma_cell": 60,
    "eosinophil": 40,
    "basophil": 25,
}

_GENERATOR_VERSION = 1
_UNLABELED_STREAM = 1_000_003  # rng stream id for the unlabeled pool (never a class index)

def _validate_counts(
    class_counts: Mapping[str, int], n_unlabeled: int, image_size: int, seed: int
) -> None:
    if not class_counts:
        raise DatasetError("class_counts is empty: give at least one class")
    unknown = [c for c in class_counts if c not in SYNTHETIC_MARROW_CLASSES]
    if unknown:
        raise DatasetError(
            f"class_counts: unknown synthetic marrow class(es) {unknown}; "
            f"known: {SYNTHETIC_MARROW_CLASSES}"
        )
    for c, k in class_counts.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise DatasetError(f"class_counts[{c!r}] must be a non-negative integer, got {k!r}")
    if isinstance(n_unlabeled, bool) or not isinstance(n_unlabeled, (int, np.integer)) or n_unlabeled < 0:
        raise DatasetError(f"n_unlabeled must be a non-negative integer, got {n_unlabeled!r}")
    if n_unlabeled > 0 and sum(class_counts.values()) == 0:
        raise DatasetError("n_unlabeled > 0 needs a non-zero class_counts mixture to draw from")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise DatasetError(f"image_size must be an integer >= 8, got {image_size!r}")


def generate_synthetic_marrow(
    root: Path,
    class_counts: Mapping[str, int],
    n_unlabeled: int,
    image_size: int,
    seed: int,
) -> pd.DataFrame:
    """Write a deterministic synthetic bone-marrow cytology dataset under ``root``.

    Layout: ``images/<class>/<class>_<i:05d>.png`` (labeled),
    ``unlabeled/unlabeled_<i:05d>.png`` (pool drawn from the same class mixture,
    label not recorded), ``manifest.csv`` (``image,label``; label empty for the
    pool) and ``generator.json`` (the parameters).

    Each image uses its own generator ``default_rng([seed, class_idx, i])``
    (``class_idx`` = position in :data:`SYNTHETIC_MARROW_CLASSES`), or
    ``default_rng([seed, 1_000_003, i])`` for pool image ``i``, so files do not
    depend on generation order: the same seed gives byte-identical files.

    Atomicity / re-runs: everything is written into a temporary sibling
    directory that is renamed to ``root`` at the end, so a killed run never leaves
    a dataset that looks complete.  If ``root`` already holds a complete dataset
    generated with the same parameters (``generator.json``) and all its images
    present, the call is a **no-op** (the existing manifest is returned; the
    content would be byte-identical anyway).  If it
    holds a dataset made with other parameters, the new one is built aside and
    swapped in (old moved away, new renamed in, old deleted).  An empty ``root``
    is replaced; a non-empty ``root`` that is not a generated dataset raises
    :class:`DatasetError` rather than being deleted.
    """
    root = Path(root)
    _validate_counts(class_counts, n_unlabeled, image_size, seed)
    params = {
        "generator": "synthetic_marrow",
        "version": _GENERATOR_VERSION,
        "class_counts": {str(c): int(k) for c, k in class_counts.items()},
        "n_unlabeled": int(n_unlabeled),
        "image_size": int(image_size),
        "seed": int(seed),
    }

    if root.exists():
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset root exists and is not a directory")
        existing = root / "generator.json"
        if (root / "manifest.csv").is_file() and existing.is_file():
            try:
                old = json.loads(existing.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old == params:
                manifest = read_manifest(root / "manifest.csv")
                if all((root / rel).is_file() for rel in manifest["image"]):
                    return manifest  # complete and identical: no-op
        elif any(root.iterdir()):
            raise DatasetError(
                f"{root}: exists, is not empty and is not a generated synthetic dataset "
                "(no manifest.csv + generator.json); refusing to overwrite it"
            )

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        rows: list[tuple[str, str]] = []
        for cls, count in class_counts.items():
            cidx = SYNTHETIC_MARROW_CLASSES.index(cls)
            if count == 0:
                continue
            (tmp / "images" / cls).mkdir(parents=True)
            for i in range(int(count)):
                rel = f"images/{cls}/{cls}_{i:05d}.png"
                arr = render_cell(cls, np.random.default_rng([seed, cidx, i]), image_size)
                Image.fromarray(arr, mode="RGB").save(tmp / rel, format="PNG")
                rows.append((rel, cls))
        if n_unlabeled:
            (tmp / "unlabeled").mkdir()
            names = [c for c in SYNTHETIC_MARROW_CLASSES if class_counts.get(c, 0) > 0]
            p = np.array([class_counts[c] for c in names], dtype=np.float64)
            p /= p.sum()
            for i in range(int(n_unlabeled)):
                rng = np.random.default_rng([seed, _UNLABELED_STREAM, i])
                cls = names[int(rng.choice(len(names), p=p))]
                rel = f"unlabeled/unlabeled_{i:05d}.png"
                Image.fromarray(render_cell(cls, rng, image_size), mode="RGB").save(
                    tmp / rel, format="PNG"
                )
                rows.append((rel, ""))
        manifest = pd.DataFrame(rows, columns=["image", "label"])
        manifest.to_csv(tmp / "manifest.csv", index=False)
        (tmp / "generator.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")

        if root.exists():
            trash = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(root, trash)
            os.replace(tmp, root)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_manifest(root / "manifest.csv")
