import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et

from .helpers import small_data, small_mlp, tree_allclose


def test_objective_is_half_squared_error_to_one_hot_plus_weight_decay():
    model = small_mlp()
    x, y = small_data(32)
    logits = np.asarray(jax.vmap(model)(x), np.float64)
    one_hot = np.eye(10)[np.asarray(y)]
    params = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    squared_norm = sum(float(np.sum(np.asarray(p, np.float64) ** 2)) for p in params)
    expected = 0.5 * np.mean(np.sum((logits - one_hot) ** 2, axis=1))
    expected += 0.5 * 1e-3 * squared_norm
    value = et.objective(model, x, y, weight_decay=1e-3)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert float(et.objective(model, x, y, weight_decay=0.0)) == pytest.approx(
        float(et.data_loss(model, x, y)), rel=1e-6
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 31])  # 32 examples
def test_chunked_value_and_gradient_match_unchunked(chunk_size):
    model = small_mlp()
    x, y = small_data(32)

    def value_and_grad(chunk):
        return eqx.filter_value_and_grad(
            lambda m: et.objective(m, x, y, chunk_size=chunk)
        )(model)

    assert tree_allclose(value_and_grad(chunk_size), value_and_grad(None), rtol=1e-5)


def test_objective_rejects_bad_inputs():
    model = small_mlp()
    x, y = small_data(8)
    with pytest.raises(ValueError, match="`weight_decay`"):
        et.objective(model, x, y, weight_decay=-1e-4)
    with pytest.raises(ValueError, match="same number of examples"):
        et.objective(model, x, y[:4])
    with pytest.raises(ValueError, match="`chunk_size`"):
        et.objective(model, x, y, chunk_size=0)


def test_mlp_has_the_paper_shape():
    model = et.MLP(64, key=jax.random.key(0))
    widths = [layer.weight.shape[0] for layer in model.layers]
    assert widths == [128, 128, 64, 64, 32, 32, 10]
    params = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    assert sum(p.size for p in params) == 40_714
    assert all(float(np.abs(layer.bias).max()) == 0 for layer in model.layers)
    assert model(jnp.zeros((8, 8, 1))).shape == (10,)
    # LeCun normal: each weight matrix has variance close to 1 / fan_in.
    first = np.asarray(model.layers[0].weight)
    assert np.var(first) * 64 == pytest.approx(1.0, rel=0.1)


def test_make_model_builds_by_name():
    model = et.make_model("mlp", (8, 8, 1), 10, key=jax.random.key(0))
    assert isinstance(model, et.MLP)
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        et.make_model("nope", (8, 8, 1), 10, key=jax.random.key(0))


def test_objective_fn_closes_over_the_static_part_and_returns_the_parameters():
    model = small_mlp()
    x, y = small_data(32)
    fn, params = et.objective_fn(model, x, y, weight_decay=1e-3, chunk_size=7)
    assert tree_allclose(params, eqx.filter(model, eqx.is_inexact_array))
    expected = et.objective(model, x, y, weight_decay=1e-3, chunk_size=7)
    # A closure of the same formula, evaluated on its own: equal to rounding.
    assert float(fn(params)) == pytest.approx(float(expected), rel=1e-6)
    grad = jax.grad(fn)(params)
    assert jax.tree.structure(grad) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="weight_decay"):
        et.objective_fn(model, x, y, weight_decay=-1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        et.objective_fn(model, x, y, chunk_size=0)
