from .mlp import MLP as MLP
from .registry import MODELS as MODELS, make_model as make_model
