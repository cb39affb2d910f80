"""Parameter sweeps compiled once (`Sweep`, `stack`), declarative sweeps at
scale (`SweepSpec` with `Grid`/`Zip`/`Random`/`LatinHypercube` axes,
`run_sweep` in chunks, a Parquet results store that survives interruptions,
sharding over devices, Ray workers), and what results files record about
their run (`provenance`, atomic writes).

May import: `jax`/`equinox`, NumPy and the standard library; `pyarrow`
(the store), `tqdm` (progress) and `ray` (the cluster) on first use only.
Sweeps take any function of pytrees, so nothing of the simulator is needed
here.
"""

from .chunking import bytes_per_row as bytes_per_row, chunk_size_for as chunk_size_for
from .cluster import RayCluster as RayCluster
from .engine import (
    ChunkRunner as ChunkRunner,
    SweepResult as SweepResult,
    run_sweep as run_sweep,
)
from .provenance import (
    git_dirty as git_dirty,
    git_revision as git_revision,
    package_versions as package_versions,
    provenance as provenance,
    write_json_atomic as write_json_atomic,
)
from .spec import (
    Grid as Grid,
    LatinHypercube as LatinHypercube,
    Random as Random,
    SweepSpec as SweepSpec,
    Zip as Zip,
    axis_from_dict as axis_from_dict,
    check_tree as check_tree,
    replace_fields as replace_fields,
)
from .store import Store as Store, read_store as read_store
from .sweep import Sweep as Sweep, stack as stack
