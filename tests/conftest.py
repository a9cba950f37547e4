import os

# The tests compile hundreds of small programs and run each for a moment: LLVM's
# optimisation passes cost more than they save (a quarter of the suite's time).
# Appended to the flags a user set; read when the first computation starts.
# `EQTUNERS_TEST_XLA_OPTIMISE=1` keeps XLA's defaults (optimisations on), to check
# that the tests hold either way (comparisons between two programs must not depend
# on how XLA compiled them).
if os.environ.get("EQTUNERS_TEST_XLA_OPTIMISE", "") != "1":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_backend_optimization_level=0"
        + " --xla_llvm_disable_expensive_passes=true"
    )

import hypothesis  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

# Property-based tests: a fixed, small budget so the suite stays fast on 2 cores.
hypothesis.settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True
)
hypothesis.settings.load_profile("ci")


@pytest.fixture
def x64():
    """Runs a test with 64-bit floats (for comparisons with dense references)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_code():
    """Frees the compiled code of each test module once it has run.

    Every XLA:CPU executable holds memory mappings until its caches drop it; a
    whole suite in one process reached Linux's limit of 65,530 mappings
    (`vm.max_map_count`) and crashed inside the compiler.
    """
    yield
    jax.clear_caches()


# The modules that take longest on 2 cores, longest first: each process takes the
# next module when it is free (`--dist loadfile`), so starting with these keeps one
# process from finishing a long module alone at the end.
LONGEST_FIRST = (
    "test_paper_suites.py",
    "test_device_benchmark.py",
    "test_sharding.py",
    "test_operator.py",
    "test_train.py",
    "test_sharpness.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return (
            LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        )

    items.sort(key=rank)  # stable: the order within a module is kept
