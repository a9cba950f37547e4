import hypothesis
import jax
import pytest

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
