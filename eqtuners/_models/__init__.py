from .mlp import MLP as MLP
from .registry import (
    DEFAULT_CHUNK_SIZES as DEFAULT_CHUNK_SIZES,
    MODELS as MODELS,
    make_model as make_model,
    num_parameters as num_parameters,
)
from .resnet import (
    RESNET34_STAGES as RESNET34_STAGES,
    BasicBlock as BasicBlock,
    ResNet as ResNet,
)
from .vgg import VGG as VGG, VGG11_CONFIG as VGG11_CONFIG
