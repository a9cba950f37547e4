import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class Dataset(eqx.Module):
    """Images and labels ready for the device, split into train and test.

    Images are float32, channels last: `(n, height, width, channels)`; labels are
    int32 in `[0, num_classes)`. The training split is in a random order fixed by
    the loader's `seed` (never sorted by content), so any prefix of it is a random
    sample.

    **Fields:**

    - `train_x`, `train_y`, `test_x`, `test_y`: the arrays.
    - `num_classes`: the number of classes.
    - `name`: the dataset's name in `DATASETS` (`"fashion_mnist"`, ...).
    - `source`: where the examples came from, for the record: the file(s) read
      (e.g. `"IDX files /data/train-images-idx3-ubyte.gz, ..."`), the
      tensorflow-datasets folder and version, `"scikit-learn digits
      (sklearn.datasets.load_digits)"`, or `"generated from seed 0"`; empty for a
      `Dataset` built by hand.
    """

    train_x: Float[Array, " n_train *shape"]
    train_y: Int[Array, " n_train"]
    test_x: Float[Array, " n_test *shape"]
    test_y: Int[Array, " n_test"]
    num_classes: int = eqx.field(static=True)
    name: str = eqx.field(static=True)
    source: str = eqx.field(static=True, default="")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def to_dataset(
    train_x, train_y, test_x, test_y, *, num_classes, name, source
) -> Dataset:
    """Moves NumPy arrays to the default device as a `Dataset`."""
    return Dataset(
        jnp.asarray(train_x, jnp.float32),
        jnp.asarray(train_y, jnp.int32),
        jnp.asarray(test_x, jnp.float32),
        jnp.asarray(test_y, jnp.int32),
        num_classes=num_classes,
        name=name,
        source=source,
    )
