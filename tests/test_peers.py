"""Our tuners against optax's implementations of the same rules, step by step."""

from benchmarks import tuner_speed


def test_the_loop_follows_optax_sgd_linesearch_and_polyak_exactly(tmp_path):
    results = tuner_speed.main(
        ["--steps", "8", "--repeats", "1", "--out", str(tmp_path)]
    )
    for name in ("constant", "armijo", "polyak"):
        assert results[name]["steps_agreeing_to_1e-6"] == 8, name
    assert (tmp_path / "tuner_speed.json").exists()
