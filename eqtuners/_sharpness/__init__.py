from ._base import (
    AbstractSharpnessEstimator as AbstractSharpnessEstimator,
    AbstractVectorEstimator as AbstractVectorEstimator,
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
from ._operator import (
    PRODUCTS as PRODUCTS,
    AbstractHessianOperator as AbstractHessianOperator,
    FreshProducts as FreshProducts,
    LinearisedProducts as LinearisedProducts,
    hessian_operator as hessian_operator,
    linearised_bytes as linearised_bytes,
)
from .directional import (
    DirectionalCurvature as DirectionalCurvature,
    value_grad_and_curvature as value_grad_and_curvature,
)
from .lanczos import Lanczos as Lanczos
from .lobpcg import LOBPCG as LOBPCG
from .power import PowerIteration as PowerIteration
from .recycled import RecycledRitz as RecycledRitz
from .spectrum import (
    SpectralQuadrature as SpectralQuadrature,
    blockwise_sharpness as blockwise_sharpness,
    hessian_trace as hessian_trace,
    most_negative_eigenvalue as most_negative_eigenvalue,
    spectral_density as spectral_density,
    spectral_density_on_grid as spectral_density_on_grid,
)
