"""eqtuners: step-size tuners and the sharpness of the loss they optimise, in JAX."""

from ._data import (
    DATASETS as DATASETS,
    Dataset as Dataset,
    DatasetNotFoundError as DatasetNotFoundError,
    load_cifar10 as load_cifar10,
    load_dataset as load_dataset,
    load_fashion_mnist as load_fashion_mnist,
    load_synthetic_cifar10 as load_synthetic_cifar10,
    read_cifar10_binary as read_cifar10_binary,
    read_fashion_mnist_idx as read_fashion_mnist_idx,
    read_idx as read_idx,
)
from ._measurements import Measurements as Measurements
from ._models import (
    DEFAULT_CHUNK_SIZES as DEFAULT_CHUNK_SIZES,
    MLP as MLP,
    MODELS as MODELS,
    VGG as VGG,
    ResNet as ResNet,
    make_model as make_model,
    num_parameters as num_parameters,
)
from ._objective import (
    Objective as Objective,
    accuracy as accuracy,
    data_loss as data_loss,
    objective as objective,
    objective_fn as objective_fn,
    squared_loss as squared_loss,
    weight_penalty as weight_penalty,
)
from ._optax import (
    ScaleByTunerState as ScaleByTunerState,
    scale_by_tuner as scale_by_tuner,
)
from ._progress_meter import (
    AbstractProgressMeter as AbstractProgressMeter,
    NoProgressMeter as NoProgressMeter,
    TextProgressMeter as TextProgressMeter,
    TqdmProgressMeter as TqdmProgressMeter,
)
from ._records import (
    History as History,
    TrainResult as TrainResult,
    TrainState as TrainState,
)
from ._sharpness import (
    LOBPCG as LOBPCG,
    AbstractHessianOperator as AbstractHessianOperator,
    AbstractSharpnessEstimator as AbstractSharpnessEstimator,
    DirectionalCurvature as DirectionalCurvature,
    FreshProducts as FreshProducts,
    Lanczos as Lanczos,
    LinearisedProducts as LinearisedProducts,
    PowerIteration as PowerIteration,
    RecycledRitz as RecycledRitz,
    SharpnessState as SharpnessState,
    SpectralQuadrature as SpectralQuadrature,
    blockwise_sharpness as blockwise_sharpness,
    directional_curvature as directional_curvature,
    hessian_operator as hessian_operator,
    hessian_trace as hessian_trace,
    hessian_vector_product as hessian_vector_product,
    linearised_bytes as linearised_bytes,
    most_negative_eigenvalue as most_negative_eigenvalue,
    sharpness as sharpness,
    spectral_density as spectral_density,
    spectral_density_on_grid as spectral_density_on_grid,
)
from ._stack import Stack as Stack, stack as stack
from ._train import (
    init_state as init_state,
    init_train_state as init_train_state,
    train as train,
)
from ._tuners import (
    CDAT as CDAT,
    AbstractCurvatureTuner as AbstractCurvatureTuner,
    AbstractFirstTrial as AbstractFirstTrial,
    AbstractReference as AbstractReference,
    AbstractTuner as AbstractTuner,
    Armijo as Armijo,
    ArmijoState as ArmijoState,
    CDATState as CDATState,
    Constant as Constant,
    ForwardTracking as ForwardTracking,
    GrippoReference as GrippoReference,
    IncreasingTrial as IncreasingTrial,
    MaxStepsizeTrial as MaxStepsizeTrial,
    MonotoneReference as MonotoneReference,
    Polyak as Polyak,
    PolyakTrial as PolyakTrial,
    PoNoS as PoNoS,
    TunerInfo as TunerInfo,
    ZhangHagerReference as ZhangHagerReference,
)

__version__ = "0.1.0"
