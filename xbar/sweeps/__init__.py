"""Parameter sweeps compiled once (`Sweep`, `stack`) and what results files
record about their run (`provenance`, atomic writes).

May import: `jax`/`equinox` and the standard library; sweeps take any
function of pytrees, so nothing of the simulator is needed here.
"""

from .provenance import (
    git_revision as git_revision,
    package_versions as package_versions,
    provenance as provenance,
    write_json_atomic as write_json_atomic,
)
from .sweep import Sweep as Sweep, stack as stack
