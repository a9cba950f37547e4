"""Helpers that `analysis` and `benchmarks` share with the library.

Not part of the public API: names here may change without notice (as
`equinox.internal` and `optimistix.internal`). They live here so that sibling
packages never import the library's private modules.
"""

from ._measurements import (
    is_scheduled as is_scheduled,
    measurement_set as measurement_set,
    schedule_arrays as schedule_arrays,
)
from ._sharpness import (
    METHODS as METHODS,
    make_estimator as make_estimator,
    random_direction as random_direction,
    value_grad_and_curvature as value_grad_and_curvature,
)
from ._sharpness._hvp import flat_hessian as flat_hessian
from ._sharpness.lanczos import lanczos as lanczos
from ._sharpness.lobpcg import (
    lobpcg as lobpcg,
    random_block as random_block,
    start_block as start_block,
)
from ._sharpness.recycled import recycled_ritz as recycled_ritz
from ._tree import (
    tree_axpy as tree_axpy,
    tree_dot as tree_dot,
    tree_dtype as tree_dtype,
)
from ._tuners._curvature import (
    curvature_along as curvature_along,
    value_grad_and_curvature_along_grad as value_grad_and_curvature_along_grad,
)
from ._validation import (
    checked_float as checked_float,
    checked_int as checked_int,
    checked_key as checked_key,
)
