"""A results store for sweeps: one Parquet file per finished chunk.

Layout of a store directory:

    sweep.json                 what the sweep is (axes, repeats, seed, chunk
                               size, base configuration values, fingerprint)
    chunks/chunk-000042.parquet  rows [42 * chunk_size, 43 * chunk_size)

Every file is written to a temporary name in the same directory and renamed
into place (`os.replace`, atomic on POSIX), so a process killed at any moment
leaves either a whole chunk or none of it, and a chunk computed twice (a Ray
worker that died after writing) replaces itself with identical rows instead of
duplicating them. A rerun reads which chunks exist and computes only the
others. Parquet needs `pyarrow` (`pip install xbar-sim[sweeps]`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from .provenance import write_json_atomic

MANIFEST = "sweep.json"
_CHUNK = re.compile(r"^chunk-(\d+)\.parquet$")


def _pa():
    try:
        import pyarrow as pa  # pyright: ignore[reportMissingImports]
        import pyarrow.parquet as pq  # pyright: ignore[reportMissingImports]
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "the sweep results store needs pyarrow: pip install 'xbar-sim[sweeps]'"
        ) from e
    return pa, pq


class Store:
    """A sweep's results directory (see the module docstring)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def chunk_dir(self) -> Path:
        return self.path / "chunks"

    def chunk_path(self, chunk: int) -> Path:
        return self.chunk_dir / f"chunk-{chunk:06d}.parquet"

    def manifest(self) -> dict | None:
        p = self.path / MANIFEST
        if not p.exists():
            return None
        return json.loads(p.read_text())

    def open(self, manifest: dict) -> dict:
        """Create the store, or check that an existing one holds the same
        sweep (same fingerprint); returns the manifest in force (an existing
        store keeps its chunk size, so chunk numbers keep their rows)."""
        old = self.manifest()
        if old is not None:
            if old.get("fingerprint") != manifest["fingerprint"]:
                raise ValueError(
                    f"the store {self.path} holds a different sweep (fingerprint "
                    f"{old.get('fingerprint')}, this sweep {manifest['fingerprint']}): "
                    "choose another store path or delete it"
                )
            return old
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / MANIFEST, manifest)
        return manifest

    def finished(self) -> set[int]:
        """Numbers of the chunks already written."""
        if not self.chunk_dir.exists():
            return set()
        return {
            int(m.group(1))
            for f in os.listdir(self.chunk_dir)
            if (m := _CHUNK.match(f)) is not None
        }

    def write_chunk(self, chunk: int, columns: dict[str, np.ndarray]) -> None:
        """Write one chunk's rows atomically (temporary file, then rename)."""
        pa, pq = _pa()
        table = pa.table({k: _arrow_column(v) for k, v in columns.items()})
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.chunk_dir, suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.chunk_path(chunk))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self) -> dict[str, np.ndarray]:
        """Every finished row, sorted by row number, as NumPy columns."""
        pa, pq = _pa()
        files = sorted(self.chunk_dir.glob("chunk-*.parquet"))
        if not files:
            return {}
        # A chunk that raised has no metric columns: those rows read as NaN.
        table = pa.concat_tables([pq.read_table(f) for f in files],
                                 promote_options="default")
        cols = {}
        for name in table.column_names:
            col = table.column(name)
            if col.null_count and pa.types.is_floating(col.type):
                cols[name] = col.to_numpy(zero_copy_only=False)
            else:
                cols[name] = col.to_numpy()
        order = np.argsort(cols["row"], kind="stable")
        return {k: v[order] for k, v in cols.items()}


def _arrow_column(v):
    pa, _ = _pa()
    arr = np.asarray(v)
    if arr.dtype.kind in "OUS":
        return pa.array([str(x) for x in arr], type=pa.string())
    return pa.array(arr)


def read_store(path: Path | str) -> tuple[dict, dict[str, np.ndarray]]:
    """`(manifest, columns)` of a results store, for plots and analysis."""
    store = Store(path)
    manifest = store.manifest()
    if manifest is None:
        raise ValueError(f"{path} is not a sweep results store (no {MANIFEST})")
    return manifest, store.read()
