"""`eqtuners.stack`: many tuners (or models) of one type as one vmappable pytree."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et

from .helpers import quadratic, random_quadratic, small_data, small_mlp

TUNER_GRIDS = {
    "armijo": [et.Armijo(c, s, d) for c, s, d in [(1e-4, 1.0, 0.8), (0.3, 2.0, 0.5)]],
    "armijo_increase": [et.Armijo(increase_factor=f) for f in (1.0, 3.0)],
    "armijo_block": [
        et.Armijo(c, 4.0, d, block_size=3) for c, d in [(0.1, 0.5), (0.5, 0.9)]
    ],
    "polyak": [et.Polyak(s, f) for s, f in [(1.0, 0.0), (0.05, 0.5), (2.0, -1.0)]],
    "constant": [et.Constant(s) for s in (0.1, 0.7)],
    "cdat": [et.CDAT(s, ema=e) for s, e in [(2.0, 0.0), (1.0, 0.5), (1.5, 0.9)]],
    "ponos": [et.PoNoS(), et.PoNoS(c=0.1, c_p=0.5, decrease_factor=0.8, xi=0.5)],
    "zhang_hager_forward": [
        et.Armijo(
            c,
            4.0,
            0.5,
            reference=et.ZhangHagerReference(xi),
            first_trial=et.ForwardTracking(f),
        )
        for c, xi, f in [(1e-4, 1.0, 2.0), (0.3, 0.2, 3.0)]
    ],
    "grippo": [
        et.Armijo(c, 2.0, reference=et.GrippoReference(3), block_size=2)
        for c in (1e-4, 0.5)
    ],
}


@pytest.mark.parametrize("kind", TUNER_GRIDS)
def test_vmap_over_a_stack_steps_every_member_as_it_would_alone(kind):
    tuners = TUNER_GRIDS[kind]
    matrix, vector = random_quadratic(0, 4)
    fn = quadratic(matrix, vector)

    def two_steps(tuner):
        w = jnp.ones(4)
        state = tuner.init(w)
        stepsizes, infos = [], []
        for _ in range(2):
            value, grad = jax.value_and_grad(fn)(w)
            stepsize, state, info = tuner.step(fn, w, value, grad, state)
            w = w - stepsize * grad
            stepsizes.append(stepsize)
            infos.append(info)
        return jnp.stack(stepsizes), infos, w

    stacked = et.stack(tuners)
    assert len(stacked) == len(tuners)
    together = eqx.filter_jit(eqx.filter_vmap(two_steps))(stacked.tree)
    for i, tuner in enumerate(tuners):
        alone = eqx.filter_jit(two_steps)(tuner)
        # The same step sizes, member by member, to float32 rounding: vmapped and
        # unbatched are two programs, whose reductions XLA may order differently
        # (1 ulp apart on an AMD EPYC); a few ulps, far below any tuner's difference.
        np.testing.assert_allclose(together[0][i], alone[0], rtol=1e-6)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-6),
            together[1],
            alone[1],
        )
        np.testing.assert_allclose(together[2][i], alone[2], rtol=1e-6)
    assert len(np.unique(np.asarray(together[0]), axis=0)) > 1  # members do differ


def test_members_come_back_by_index_and_iteration():
    tuners = [
        et.Armijo(c=c, max_stepsize=s) for c, s in [(1e-4, 1.0), (0.1, 2.0), (0.5, 3.0)]
    ]
    stacked = et.stack(tuners)
    assert isinstance(stacked.tree, et.Armijo) and stacked.size == 3
    assert stacked.tree.c.shape == (3,) and stacked.tree.max_backtracks == 100
    for tuner, member in zip(tuners, stacked, strict=True):
        assert isinstance(member, et.Armijo) and member.c.shape == ()
        assert float(member.c) == float(tuner.c)
        assert float(member.max_stepsize) == float(tuner.max_stepsize)
    assert float(stacked[-1].max_stepsize) == 3.0
    with pytest.raises(IndexError):
        stacked[3]
    with pytest.raises(TypeError):
        stacked[0.5]


def test_a_stack_of_models_runs_each_model_under_vmap():
    models = [small_mlp(key) for key in range(3)]
    stacked = et.stack(models)
    x, _ = small_data(8)
    logits = eqx.filter_vmap(lambda m: jax.vmap(m)(x))(stacked.tree)
    assert logits.shape == (3, 8, 10)
    for i, model in enumerate(models):
        np.testing.assert_allclose(logits[i], jax.vmap(model)(x), rtol=1e-5, atol=1e-6)
    assert isinstance(stacked[1], et.MLP)


def test_a_stacked_configuration_compiles_once():
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def steps(tuners, w):
        fn = lambda v: 3.0 * v @ v  # noqa: E731
        value, grad = jax.value_and_grad(fn)(w)
        return eqx.filter_vmap(lambda t: t.step(fn, w, value, grad, t.init(w))[0])(
            tuners
        )

    for values in [(1e-4, 0.1), (0.3, 0.5), (0.01, 0.9)]:
        stepsizes = steps(et.stack([et.Armijo(c=c) for c in values]).tree, jnp.ones(2))
        assert stepsizes.shape == (2,)


def test_stack_rejects_an_empty_sequence_and_a_single_tuner():
    with pytest.raises(ValueError, match="empty"):
        et.stack([])
    with pytest.raises(ValueError, match="list or tuple"):
        et.stack(et.Armijo())


def test_stack_requires_one_tuner_type_and_names_the_members():
    with pytest.raises(ValueError, match="one tuner type") as error:
        et.stack([et.Armijo(), et.Armijo(), et.Polyak()])
    assert "Armijo (members 0, 1)" in str(error.value)
    assert "Polyak (member 2)" in str(error.value)
    with pytest.raises(ValueError, match=r"one type.*MLP \(member 0\)"):
        et.stack([small_mlp(), et.Constant(0.1)])


@pytest.mark.parametrize(
    "members, field, first, other",
    [
        ([et.Armijo(), et.Armijo(max_backtracks=50)], "max_backtracks", "100", "50"),
        ([et.Armijo(), et.Armijo(block_size=4)], "block_size", "1", "4"),
        (
            [et.Armijo(), et.Armijo(increase_factor=2.0)],
            "first_trial",
            "a MaxStepsizeTrial",
            "IncreasingTrial",
        ),
        (
            [et.Armijo(), et.Armijo(min_grad_norm=1e-8)],
            "min_grad_norm",
            "None",
            "array",
        ),
    ],
)
def test_stack_names_the_field_where_members_differ(members, field, first, other):
    with pytest.raises(ValueError, match=f"`{field}` is {first} in member 0") as error:
        et.stack(members)
    assert f"{other}" in str(error.value) and "member 1" in str(error.value)


def test_stack_of_models_names_the_leaf_whose_shape_differs():
    with pytest.raises(ValueError, match=r"`layers\[1\]\.weight` is an array of shape"):
        et.stack([small_mlp(0, (16, 16)), small_mlp(1, (16, 32))])


def test_stack_revalidates_members_built_under_a_transform_or_by_tree_at():
    under_jit = jax.jit(lambda s: et.Polyak(max_stepsize=s))(-1.0)
    assert float(under_jit.max_stepsize) == -1.0  # tracers pass the constructor
    with pytest.raises(ValueError, match=r"Member 1 .*`max_stepsize`"):
        et.stack([et.Polyak(), under_jit])
    by_tree_at = eqx.tree_at(lambda t: t.decrease_factor, et.Armijo(), jnp.asarray(1.5))
    with pytest.raises(ValueError, match=r"Member 2 .*`decrease_factor`"):
        et.stack([et.Armijo(), et.Armijo(), by_tree_at])
    # A batch built by vmapping a constructor is not a member: members are scalars.
    batch = eqx.filter_vmap(et.Constant)(jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"Member 0 .*`stepsize` must be a single"):
        et.stack([batch, batch])


def test_stack_constructor_checks_the_leading_axes():
    with pytest.raises(ValueError, match="leading axis of size 3"):
        et.Stack(et.Constant(0.1), 3)
    with pytest.raises(ValueError, match="`size`"):
        et.Stack(et.stack([et.Constant(0.1)]).tree, 0)
