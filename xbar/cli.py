"""The `xbar` command: `xbar sweep CONFIG.toml` runs a declarative sweep into
its results store (resuming if it was interrupted), `xbar plot STORE` redraws
its figure from the store alone.

    xbar sweep experiments/configs/pcm_drift.toml
    xbar sweep CONFIG.toml --devices all          # shard over every JAX device
    xbar sweep CONFIG.toml --ray local --workers 4 # or --ray ray://head:10001
    xbar plot figures/pcm_drift.sweep -o figures/pcm_drift.png

The command line is the only part of the package that imports argparse and
(for `plot`) matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def default_plot(manifest: dict, cols: dict, png: Path | str) -> None:
    """Each metric against the first swept field: mean over repeats and the
    min-max band, failed rows left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = [k for k in cols if k.startswith("metric.")] or ["result_code"]
    paths = manifest["paths"]
    n = len(metrics)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    ok = cols["result_code"] == 0
    for ax, m in zip(axes[0], metrics):
        if paths:
            x, y = cols[paths[0]][ok], cols[m][ok]
            xs = np.unique(x)
            lo = [np.min(y[x == v]) for v in xs]
            hi = [np.max(y[x == v]) for v in xs]
            ax.fill_between(xs, lo, hi, alpha=0.3)
            ax.plot(xs, [np.mean(y[x == v]) for v in xs], "o-", ms=3)
            ax.set_xlabel(paths[0])
        else:
            ax.plot(cols[m], "o")
        ax.set_title(m.removeprefix("metric."))
    fig.suptitle(f"{manifest['name']}: {int(np.sum(ok))} of {len(ok)} rows successful")
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def plot_store(store: Path | str, png: Path | str | None = None) -> Path:
    """Redraw a sweep's figure from its results store alone."""
    from xbar.sweeps.store import read_store
    from xbar.sweeps.task import plot_function

    manifest, cols = read_store(store)
    if not cols:
        raise ValueError(f"{store} holds no finished rows yet")
    png = Path(png) if png is not None else Path(store).with_suffix(".png")
    (plot_function(manifest, store) or default_plot)(manifest, cols, png)
    return png


def _devices(s: str | None):
    if s is None or s == "all":
        return s
    return int(s)


def main(argv=None) -> int:
    doc = (__doc__ or "xbar").split("\n")[0]
    p = argparse.ArgumentParser(prog="xbar", description=doc)
    sub = p.add_subparsers(dest="command", required=True)
    ps = sub.add_parser("sweep", help="run a sweep from a TOML file (resumes)")
    ps.add_argument("config", type=Path)
    ps.add_argument("--store", type=Path,
                    help="results directory (default: the file's)")
    ps.add_argument("--devices", default=None,
                    help="'all' or a count: shard each chunk over JAX devices")
    ps.add_argument("--ray", default=None, metavar="ADDRESS",
                    help="run on Ray: 'local' starts one on this machine "
                    "(localhost), else a cluster address")
    ps.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    ps.add_argument("--chunk-size", type=int, default=None)
    ps.add_argument("--no-progress", action="store_true")
    ps.add_argument("--figure", type=Path, default=None,
                    help="PNG path (default: the file's 'figure')")
    ps.add_argument("--no-plot", action="store_true", help="skip drawing the figure")
    pp = sub.add_parser("plot", help="redraw a figure from a results store")
    pp.add_argument("store", type=Path)
    pp.add_argument("-o", "--out", type=Path, default=None, help="PNG path")
    args = p.parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as err:
        # A missing file or a malformed sweep is the user's input, not a bug:
        # say what is wrong in one line (the sweep validates before computing,
        # so nothing already in the store is lost).
        p.exit(2, f"xbar {args.command}: error: {err}\n")


def _run(args) -> int:
    if args.command == "plot":
        print(plot_store(args.store, args.out))
        return 0

    from xbar.sweeps.cluster import RayCluster
    from xbar.sweeps.task import load_config, run_config

    ray = None
    if args.ray is not None:
        ray = RayCluster(address=None if args.ray == "local" else args.ray,
                         num_workers=args.workers)
    res = run_config(args.config, store=args.store, devices=_devices(args.devices),
                     ray=ray, progress=not args.no_progress, chunk_size=args.chunk_size)
    cfg = load_config(args.config)
    store = args.store or cfg.get("store")
    print(
        f"{cfg['name']}: {len(res.columns.get('row', []))} rows in the store "
        f"({res.n_chunks_run} chunks run, {res.n_chunks_skipped} already done), "
        f"{res.n_failed} failed, {res.n_traces} compilation(s), {res.seconds:.1f} s "
        f"-> {store}"
    )
    if not args.no_plot and res.columns and store is not None:
        print(plot_store(store, args.figure or cfg.get("figure")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
