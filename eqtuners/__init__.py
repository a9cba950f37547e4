"""eqtuners: step-size tuners and the sharpness of the loss they optimise, in JAX."""

from ._data import (
    DATASETS as DATASETS,
    Dataset as Dataset,
    load_dataset as load_dataset,
)
from ._models import MLP as MLP, MODELS as MODELS, make_model as make_model
from ._objective import (
    data_loss as data_loss,
    objective as objective,
    squared_loss as squared_loss,
    weight_penalty as weight_penalty,
)
from ._sharpness import (
    AbstractSharpnessEstimator as AbstractSharpnessEstimator,
    Lanczos as Lanczos,
    PowerIteration as PowerIteration,
    SharpnessState as SharpnessState,
    hessian_vector_product as hessian_vector_product,
    sharpness as sharpness,
)
from ._train import History as History, TrainResult as TrainResult, train as train
from ._tuners import (
    AbstractTuner as AbstractTuner,
    Armijo as Armijo,
    Constant as Constant,
    Polyak as Polyak,
    TunerInfo as TunerInfo,
)

__version__ = "0.1.0"
