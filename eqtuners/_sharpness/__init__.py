from ._base import (
    AbstractSharpnessEstimator as AbstractSharpnessEstimator,
    SharpnessInfo as SharpnessInfo,
    SharpnessState as SharpnessState,
)
from ._function import (
    METHODS as METHODS,
    make_estimator as make_estimator,
    sharpness as sharpness,
)
from ._hvp import (
    directional_curvature as directional_curvature,
    hessian_vector_product as hessian_vector_product,
    random_direction as random_direction,
)
from .lanczos import Lanczos as Lanczos
from .power import PowerIteration as PowerIteration
