"""A run's checkpoint file: written atomically, read back or told why not.

`read_checkpoint` never raises for a damaged file: a checkpoint that is truncated
(a kill while writing, a full disk) or of another structure (an older version's)
comes back as `None` with one line naming the file, and the run starts over.
"""

import dataclasses
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from ._files import replace_atomically


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    )


def _keys_as_data(state):
    """PRNG keys as their raw data, which equinox serialisation can write."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _keys_from_data(state, like):
    return jax.tree.map(
        lambda x, y: jax.random.wrap_key_data(x) if _is_key(y) else x, state, like
    )


def write_checkpoint(path: Path, state) -> None:
    """Replaces `path` by `state` (equinox serialisation), atomically."""
    replace_atomically(
        path, lambda file: eqx.tree_serialise_leaves(file, _keys_as_data(state))
    )


def _reason(error: BaseException) -> str:
    """The innermost error of the chain (what the reader met), its first sentence."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip().split("\n")[0].split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def read_checkpoint(path: Path, like) -> tuple[Any, str | None]:
    """`(state, None)`, the state saved in `path` shaped like `like` (a state or its
    `jax.eval_shape`), or `(None, problem)` with one line saying why it cannot be
    read: an error of the deserialisation, or bytes left over (a file of another
    structure that happens to begin like this one)."""
    try:
        with Path(path).open("rb") as file:
            state = eqx.tree_deserialise_leaves(file, _keys_as_data(like))
            left = file.read(1)
    except Exception as error:  # any failure to read it means: cannot resume
        return None, (
            f"{path} cannot be read (truncated, or of another structure: "
            f"{_reason(error)})"
        )
    if left:
        return None, (
            f"{path} cannot be read (of another structure: it holds more than a "
            "state of this configuration)"
        )
    return _keys_from_data(state, like), None


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a run goes on from (`RunDirectory.resume`).

    - `state`: the saved state to resume from, or `None`: the run starts from
      step 0, and its rows were discarded.
    - `step`: the step it resumes from (0 when it starts over).
    - `killed`: its last process died while writing it (`meta.json` said
      `running` when the lock was taken).
    - `problem`: why a checkpoint that exists was not used (one line naming the
      file), or `None`.
    """

    state: Any
    step: int
    killed: bool
    problem: str | None = None

    @property
    def message(self) -> str | None:
        """One line for the user; `None` for a run that simply starts."""
        if self.problem is not None:
            return f"{self.problem}; starting over from step 0"
        if self.state is None:
            if self.killed:
                return "a run that was killed before its first checkpoint: from step 0"
            return None
        if self.killed:
            return f"resuming a run that was killed at step {self.step}"
        return f"resumed from step {self.step}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    cause = error.__cause__ or error.__context__
    detail = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    if cause is not None and str(cause).strip():
        detail += f" ({type(cause).__name__}: {str(cause).strip().splitlines()[0]})"
    return detail
