from ._base import (
    AbstractCurvatureTuner as AbstractCurvatureTuner,
    AbstractTuner as AbstractTuner,
    TunerInfo as TunerInfo,
)
from .armijo import Armijo as Armijo, ArmijoState as ArmijoState
from .cdat import CDAT as CDAT, CDATState as CDATState
from .constant import Constant as Constant
from .first_trials import (
    AbstractFirstTrial as AbstractFirstTrial,
    ForwardTracking as ForwardTracking,
    IncreasingTrial as IncreasingTrial,
    MaxStepsizeTrial as MaxStepsizeTrial,
    PolyakTrial as PolyakTrial,
)
from .polyak import Polyak as Polyak
from .ponos import PoNoS as PoNoS
from .references import (
    AbstractReference as AbstractReference,
    GrippoReference as GrippoReference,
    MonotoneReference as MonotoneReference,
    ZhangHagerReference as ZhangHagerReference,
)
