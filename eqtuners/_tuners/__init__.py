from ._base import AbstractTuner as AbstractTuner, TunerInfo as TunerInfo
from .armijo import Armijo as Armijo
from .constant import Constant as Constant
from .polyak import Polyak as Polyak
