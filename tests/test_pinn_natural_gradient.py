"""Natural-gradient steps with momentum in the dual form (sciml.pinn.natural_gradient.Spring): the direction
solves its regularised least-squares problem (primal normal equations as the oracle), with no momentum it is
the minimum-norm Gauss-Newton step, the iteration solves a consistent linear system from batches with
fewer rows than unknowns, and a PINN trained with it
reaches an error that Adam at the same number of steps does not; bad settings are refused."""

import pytest
import torch

import sciml
from problems.pdes import allen_cahn
from sciml.pinn import PINN
from sciml.pinn.natural_gradient import Spring
from sciml.run import ConfigError, load_config
from sciml.transfer import Family, TransferRunConfig

from test_pinn_gauss_newton import one_thread, poisson, tiny_cfg  # noqa: F401  (one_thread: an autouse fixture)

F64 = torch.float64


def test_direction_solves_the_regularised_least_squares_problem():
    # phi_k = argmin |J phi - r|^2 + lam |phi - mu phi_{k-1}|^2: (J^T J + lam I) phi = J^T r + lam mu phi_{k-1}
    g = torch.Generator().manual_seed(0)
    m, p = 7, 30
    spring = Spring(damping=0.3, momentum=0.8)
    for _ in range(3):
        J = torch.randn(m, p, generator=g, dtype=F64)
        r = torch.randn(m, generator=g, dtype=F64)
        prev = torch.zeros(p, dtype=F64) if spring.phi is None else spring.phi.clone()
        lam = 0.3 * float((J**2).sum()) / m  # relative to the mean diagonal of J J^T
        want = torch.linalg.solve(J.T @ J + lam * torch.eye(p, dtype=F64), J.T @ r + lam * 0.8 * prev)
        assert torch.allclose(spring.direction(r, J), want, rtol=1e-9, atol=1e-12)
    assert spring.steps == 3


def test_no_momentum_and_small_damping_is_the_minimum_norm_gauss_newton_step():
    g = torch.Generator().manual_seed(1)
    J = torch.randn(6, 40, generator=g, dtype=F64)
    r = torch.randn(6, generator=g, dtype=F64)
    phi = Spring(damping=1e-12, momentum=0.0).direction(r, J)
    assert torch.allclose(phi, torch.linalg.pinv(J) @ r, atol=1e-8)


def _row_batches(momentum, eta, steps=300, seed=2):
    # a consistent system A theta = b with 60 unknowns, taken 10 random rows of 240 at a time
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(240, 60, generator=g, dtype=F64)
    exact = torch.randn(60, generator=g, dtype=F64)
    b = A @ exact
    theta = torch.zeros(60, dtype=F64)
    spring = Spring(damping=1e-3, momentum=momentum)
    for _ in range(steps):
        rows = torch.randperm(240, generator=g)[:10]
        theta = theta - eta * spring.direction(A[rows] @ theta - b[rows], A[rows])
    return float((theta - exact).norm() / exact.norm())


@pytest.mark.parametrize("momentum, eta", [(0.0, 1.0), (0.6, 0.4), (0.9, 0.1)])
def test_batches_of_fewer_rows_than_unknowns_solve_a_consistent_system(momentum, eta):
    # each batch sees 10 of 60 directions; the iteration must still reach the one exact solution
    assert _row_batches(momentum, eta) < 1e-6
    # a momentum too large for the step diverges (eta / (1 - mu) = 5): the test can fail
    assert _row_batches(0.9, 0.5, steps=100) > 1


def test_pinn_with_spring_beats_adam_at_equal_steps():
    problem = poisson()
    adam = sciml.fit(PINN, tiny_cfg(iters=150), problem).payload.trainer
    ng = sciml.fit(PINN, tiny_cfg(iters=150, optimizer="spring", ng_lr=0.1, ng_momentum=0.9), problem)
    e_adam, e_ng = adam.evaluate()[0], ng.payload.trainer.evaluate()[0]
    assert e_ng < 5e-3 and e_ng < e_adam / 5, (e_ng, e_adam)
    assert ng.payload.trainer.spring.steps == 150 and not ng.payload.trainer.opts  # no Adam step was taken


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="momentum"):
        Spring(momentum=1.0)
    with pytest.raises(ConfigError, match="ng_momentum"):
        tiny_cfg(optimizer="spring", ng_momentum=1.0)
    with pytest.raises(ConfigError, match="optimizer"):
        tiny_cfg(optimizer="sprint")
    with pytest.raises(FloatingPointError):
        Spring().direction(torch.tensor([float("nan")]), torch.ones(1, 3))
    # a family trains K stacked members: one natural-gradient solve would mix them
    base = {"problem": {"family": "allen_cahn", "value": 1.0, "d": 3}, "model": {"widths": [8, 8]},
            "sampling": {"n_interior": 16, "n_boundary": 8, "n_initial": 8, "n_test": 50, "resample": False},
            "optim": {"iters": 2}}
    src = sciml.fit(PINN, load_config(base, TransferRunConfig), allen_cahn(0.0, 3)).payload
    cfg = load_config({**base, "optim": {"iters": 2, "optimizer": "spring"}}, TransferRunConfig)
    with pytest.raises(ConfigError, match="optim.optimizer"):
        sciml.fit(Family, cfg, [allen_cahn(v, 3) for v in (0.5, 1.0)], source=src)
