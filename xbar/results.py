"""Reproducible results files: package versions, git revision, atomic writes."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

_PACKAGES = ("jax", "jaxlib", "equinox", "numpy", "scipy", "matplotlib", "optax",
             "mlxtend", "nir", "xbar-sim")


def package_versions(packages=_PACKAGES) -> dict[str, str]:
    """Python and package versions, "not installed" for absent packages."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_revision(path: Path | str | None = None) -> str:
    """The git commit checked out at `path` (default: this package's repo), or "unknown"."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_json_atomic(path: Path | str, obj) -> None:
    """Write `obj` as JSON via a temporary file and rename, so an interrupted
    write never leaves a truncated results file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def provenance() -> dict:
    """What a results file records about the run's software: package versions,
    git revision and JAX backend."""
    import jax

    return {
        "versions": package_versions(),
        "git_revision": git_revision(),
        "jax_backend": jax.default_backend(),
    }


def experiment_main(argv, *, doc: str, name: str, run, plot, out_dir: Path):
    """The command line every experiment shares: `--quick`, `--seed`,
    `--out-dir` and `--plot-only` (redraw NAME.png from NAME.json).

    Returns `run(quick=, seed=, out_dir=)`'s result, or None for `--plot-only`.
    """
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=out_dir)
    p.add_argument(
        "--plot-only", action="store_true", help="redraw the figure from the results file"
    )
    args = p.parse_args(argv)
    if args.plot_only:
        plot(args.out_dir / f"{name}.json", args.out_dir / f"{name}.png")
        return None
    return run(quick=args.quick, seed=args.seed, out_dir=args.out_dir)


def save_figure(fig, png_path: Path | str, dpi: int) -> None:
    """Lay out, write (making the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=dpi)
    plt.close(fig)
