"""analysis: models and plots for the study of step-size tuners and sharpness.

It imports `eqtuners` and is never imported by it.

- The top-eigenmode quadratic model and its closed forms (Section 4 of the paper):
  `TopEigenmodeQuadratic`, `edge_of_stability`, `armijo_acceptance_bound`,
  `polyak_stepsize`, `armijo_grid_stepsize`, and `largest_armijo_stepsize` (the
  same bound on any slice, by root finding).
- Joint step-size/sharpness dynamics under any `eqtuners` tuner: `simulate` on an
  `AbstractDynamicsModel`, either `SecondOrderRegression` (exact, in parameter
  space) or `SelfStabilisation` (the reduced two-variable dynamics).
- CDAT's threshold at `sigma = 2` in such a model: `sigma_sweep` runs CDAT at many
  `sigma` in one compile and returns a `SigmaSweep` (final sharpness and median
  step size x sharpness against `sigma`).
- Mini-batch training on a sum of per-example quadratics whose mini-batch Hessians
  differ from the full one (`PerExampleQuadratics`, `random_per_example_quadratics`):
  `simulate_minibatch` runs SGD with any tuner checking its step on the gradient's
  own batch and records the full-batch sharpness, the batch curvature and the batch
  top eigenvalue; closed forms: `expected_batch_curvature` and
  `batch_top_eigenvalue_bounds` as functions of the batch size (the Armijo bound
  `armijo_acceptance_bound(kappa_B)` holds on every batch).
- Figures (`analysis.plots`, drawn from `eqtuners.train(...).history`): the paper's
  four panels for a group of runs (`plot_panels`), the stochastic suite by batch
  size (`plot_batch_size_grid`), its Figure 6 (`plot_polyak_zoom`) and Figure 7
  (`plot_cap_sweep`), sharpness against step size (`plot_phase_portrait`),
  Hessian spectral densities (`plot_spectral_densities`), CDAT's `sigma` sweep in
  a network beside a model (`plot_sigma_sweep`) and the Armijo searches' free
  curvature bracket (`plot_curvature_bracket`); a run is a `Curve`.
"""

from ._armijo_boundary import largest_armijo_stepsize as largest_armijo_stepsize
from ._minibatch import (
    PerExampleQuadratics as PerExampleQuadratics,
    batch_top_eigenvalue_bounds as batch_top_eigenvalue_bounds,
    expected_batch_curvature as expected_batch_curvature,
    random_per_example_quadratics as random_per_example_quadratics,
    simulate_minibatch as simulate_minibatch,
)
from ._quadratic import (
    TopEigenmodeQuadratic as TopEigenmodeQuadratic,
    armijo_acceptance_bound as armijo_acceptance_bound,
    armijo_grid_stepsize as armijo_grid_stepsize,
    edge_of_stability as edge_of_stability,
    polyak_stepsize as polyak_stepsize,
)
from ._regression import (
    SecondOrderRegression as SecondOrderRegression,
    random_second_order_regression as random_second_order_regression,
)
from ._self_stabilisation import SelfStabilisation as SelfStabilisation
from ._sigma_sweep import SigmaSweep as SigmaSweep, sigma_sweep as sigma_sweep
from ._simulate import (
    AbstractDynamicsModel as AbstractDynamicsModel,
    Trajectory as Trajectory,
    simulate as simulate,
)
