"""What a results file records about its run (package versions, git revision,
backend), and atomic writes so an interrupted run never leaves a truncated file."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

_PACKAGES = ("jax", "jaxlib", "equinox", "numpy", "scipy", "matplotlib", "optax",
             "mlxtend", "nir", "pyarrow", "ray", "xbar-sim")


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
    """The git commit checked out at `path` (default: this package's repo), or
    "unknown"."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def git_dirty(path: Path | str | None = None) -> bool | None:
    """Whether the checkout at `path` (default: this package's repo) has
    uncommitted changes to tracked files; None if git cannot tell."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.strip())


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


def code_version() -> dict:
    return {"git_revision": git_revision(), "git_dirty": bool(git_dirty()),
            "versions": package_versions()}


def warn_if_code_changed(path, started: dict | None, now: dict) -> None:
    """A resumed store whose finished chunks came from other code (another
    git revision, uncommitted changes, other package versions) would mix rows
    of two simulators in one figure: say so. Each row records its revision,
    so the rows stay separable."""
    if started is None or started == now:
        return
    what = []
    rev0, rev1 = started.get("git_revision"), now["git_revision"]
    if rev0 != rev1:
        what.append(f"git revision {rev0} -> {rev1}")
    if bool(started.get("git_dirty")) != now["git_dirty"]:
        when = "then" if started.get("git_dirty") else "now"
        what.append(f"uncommitted changes in the checkout {when}")
    old_v, new_v = started.get("versions", {}), now["versions"]
    changed = sorted(k for k in set(old_v) | set(new_v) if old_v.get(k) != new_v.get(k))
    if changed:
        what.append("package versions of " + ", ".join(changed))
    if what:
        warnings.warn(
            f"resuming the store {path}, started by other code ({'; '.join(what)}): "
            "its finished chunks are kept and the new rows come from this code; "
            "each row's git_revision/versions columns tell them apart (delete the "
            "store to recompute everything)",
            UserWarning,
            stacklevel=3,
        )
