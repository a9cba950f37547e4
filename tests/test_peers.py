"""Our tuners against optax's implementations of the same rules, step by step."""

import numpy as np

from benchmarks import tuner_speed


def test_the_loop_follows_optax_sgd_linesearch_and_polyak_exactly(tmp_path):
    results = tuner_speed.main(
        ["--steps", "8", "--repeats", "1", "--out", str(tmp_path)]
    )
    for name in ("constant", "armijo", "polyak"):
        assert results[name]["steps_agreeing_to_1e-6"] == 8, name
    # The tuners past the paper, timed in one rotation with Constant and Armijo.
    for name in ("cdat", "ponos"):
        assert results[name]["ratio_over_constant"] > 0, name
        assert np.isfinite(results[name]["final_loss_ours"]), name
    assert results["ponos"]["evals_per_step"] >= 1
    assert (tmp_path / "tuner_speed.json").exists()
