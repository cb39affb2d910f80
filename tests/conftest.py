"""Shared test configuration: strict promotion and a `getkey` fixture.

Silent dtype or rank promotion is an error in the whole suite, as in equinox's
`tests/conftest.py`, so a float64 Python array or an implicit broadcast in the
library fails loudly here instead of costing precision or memory later.
"""

import sys
import zlib
from pathlib import Path

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# The experiments' and benchmarks' shared tooling (`common`, `timing`) is not
# part of the library; the scripts find it beside themselves, the tests here.
_ROOT = Path(__file__).resolve().parents[1]
for _d in ("experiments", "benchmarks"):
    if str(_ROOT / _d) not in sys.path:
        sys.path.append(str(_ROOT / _d))


class GetKey:
    """Hands out a fresh PRNG key on every call.

    The seed is fixed per test (derived from the test's id), so each test is
    reproducible run to run and tests do not share random streams. Statistical
    tolerances below are set at ~5 sigma of the sampling error, so a fixed seed
    that passes once keeps passing; changing the seed does not make them flaky.
    """

    def __init__(self, seed: int = 0):
        self._base = jax.random.key(seed)
        self._count = 0

    def __call__(self):
        self._count += 1
        return jax.random.fold_in(self._base, self._count)


@pytest.fixture
def getkey(request):
    return GetKey(zlib.crc32(request.node.nodeid.encode()))
