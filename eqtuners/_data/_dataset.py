import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class Dataset(eqx.Module):
    """Images and labels ready for the device, split into train and test.

    Images are float32, channels last: `(n, height, width, channels)`; labels are
    int32 in `[0, num_classes)`.
    """

    train_x: Float[Array, " n_train *shape"]
    train_y: Int[Array, " n_train"]
    test_x: Float[Array, " n_test *shape"]
    test_y: Int[Array, " n_test"]
    num_classes: int = eqx.field(static=True)
    name: str = eqx.field(static=True)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def to_dataset(train_x, train_y, test_x, test_y, *, num_classes, name) -> Dataset:
    """Moves NumPy arrays to the default device as a `Dataset`."""
    return Dataset(
        jnp.asarray(train_x, jnp.float32),
        jnp.asarray(train_y, jnp.int32),
        jnp.asarray(test_x, jnp.float32),
        jnp.asarray(test_y, jnp.int32),
        num_classes=num_classes,
        name=name,
    )
