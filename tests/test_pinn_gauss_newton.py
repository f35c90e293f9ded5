"""The Levenberg-Marquardt finish (sciml.pinn.gauss_newton): the step solves a known least-squares problem,
the damped iteration reaches Rosenbrock's minimum, a check batch refuses a step that fits only its own batch,
the projected trial is the one judged, the per-point residual and its Jacobian match closed forms on an
exact PDE solution, a step never raises its batch's loss, and on a small PINN the finish reaches an error
that the same number of Adam steps does not."""

import dataclasses
import math

import pytest
import torch
from torch import nn

import sciml
from problems.pdes import allen_cahn
from sciml.pinn import PINN
from sciml.pinn.gauss_newton import LevenbergMarquardt, lm_step, residual_functions, residual_jacobian, residuals
from sciml.pinn.problem import Ball, StationaryProblem
from sciml.run import ConfigError, load_config
from sciml.transfer import Family, TransferRunConfig


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_step_with_small_damping_is_the_least_squares_solution():
    # r = A theta - b at theta = 0: the Gauss-Newton step is the normal equations' solution
    g = torch.Generator().manual_seed(0)
    for m, p in ((40, 6), (6, 40)):  # primal (P <= m) and dual (P > m) forms
        A = torch.randn(m, p, generator=g, dtype=torch.float64)
        b = torch.randn(m, generator=g, dtype=torch.float64)
        delta, pred = lm_step(-b, A, 1e-12)
        exact = torch.linalg.pinv(A) @ b  # minimum-norm least squares: the dual form's limit
        assert torch.allclose(delta, exact, atol=1e-6), (m, p)
        assert pred == pytest.approx(float(b @ b - ((A @ exact - b) ** 2).sum()), rel=1e-8)
    # large damping: a short gradient-descent step, -J^T r / lambda
    delta, _ = lm_step(-b, A, 1e6)
    scale = float((A**2).sum()) / A.shape[1]
    assert torch.allclose(delta, A.T @ b / (1e6 * scale), rtol=1e-4)


def test_rosenbrock_reaches_its_minimum():
    # residuals (10 (b - a^2), 1 - a) at two "points": the minimum of their squares is a = b = 1
    def interior(theta, t, x, f):
        return x[0] * 10 * (theta["b"] - theta["a"] ** 2) + (1 - x[0]) * (1 - theta["a"])

    theta = {"a": torch.tensor(-1.2, dtype=torch.float64), "b": torch.tensor(1.0, dtype=torch.float64)}
    x = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    blocks = [("interior", 1.0, torch.zeros(2, dtype=torch.float64), x, torch.zeros(2, dtype=torch.float64))]
    lm = LevenbergMarquardt((interior, interior), damping=1e-2)
    losses = []
    for _ in range(60):
        before, after, _ = lm.step(theta, blocks)
        assert after <= before  # a refused step leaves the parameters where they were
        losses.append(after)
    assert float(theta["a"]) == pytest.approx(1.0, abs=1e-8) and float(theta["b"]) == pytest.approx(1.0, abs=1e-8)
    assert losses[-1] < 1e-20 and lm.accepted > 0


def test_a_step_that_only_fits_its_batch_is_refused_by_the_check_batch():
    # P = 10 > m = 3: the step fits its batch exactly; on the check batch (targets mirrored about the start)
    # that same step doubles every residual, so it is refused (and the damping raised); without the check
    # it is taken.
    def interior(theta, t, x, f):
        return (x * theta["w"]).sum() - f

    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 10, generator=g, dtype=torch.float64)
    f = torch.randn(3, generator=g, dtype=torch.float64)
    w0 = torch.zeros(10, dtype=torch.float64)
    t = torch.zeros(3, dtype=torch.float64)
    blocks, check = [("interior", 1.0, t, x, f)], [("interior", 1.0, t, x, -f)]
    theta = {"w": w0.clone()}
    lm = LevenbergMarquardt((interior, interior), damping=1e-9)
    before, after, _ = lm.step(theta, blocks, check)
    assert after == before and torch.equal(theta["w"], w0) and lm.accepted == 0 and lm.damping > 1e-9
    before, after, _ = LevenbergMarquardt((interior, interior), damping=1e-9).step(theta, blocks)
    assert after < 1e-12 * before
    # a check batch drawn like the step's (the same law): the step carries over and is taken
    theta = {"w": w0.clone()}
    lm = LevenbergMarquardt((interior, interior), damping=1e-9)
    xs = torch.randn(30, 10, generator=g, dtype=torch.float64)
    w_true = torch.randn(10, generator=g, dtype=torch.float64)
    z = torch.zeros(30, dtype=torch.float64)
    lm.step(theta, [("interior", 1.0, z, xs, xs @ w_true)], [("interior", 1.0, z, -xs, -xs @ w_true)])
    assert lm.accepted == 1 and torch.allclose(theta["w"], w_true, atol=1e-6)


def test_the_step_judged_is_the_projected_one():
    # r = s + 1 with s >= 0: the Gauss-Newton step goes to s = -1 (loss 0), the projection puts it at 0
    # (loss 1); the step reports and keeps the projected point's loss
    def interior(theta, t, x, f):
        return theta["s"] - f

    theta = {"s": torch.tensor(1.0, dtype=torch.float64)}
    z = torch.zeros(1, dtype=torch.float64)
    blocks = [("interior", 1.0, z, z[:, None], -torch.ones(1, dtype=torch.float64))]
    before, after, _ = LevenbergMarquardt((interior, interior), damping=1e-9).step(
        theta, blocks, project=lambda: theta["s"].clamp_(min=0))
    assert before == pytest.approx(4.0) and after == pytest.approx(1.0) and float(theta["s"]) == 0.0


class ScaledExact(nn.Module):
    """u(t, x) = s * u*(t, x), u* the exact Allen-Cahn solution; the network input is (t - 1/2, x)."""

    def __init__(self, exact):
        super().__init__()
        self.s = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.exact = exact

    def forward(self, z):
        return (self.s * self.exact(z[:, 0] + 0.5, z[:, 1:]))[:, None]


def test_residual_and_jacobian_match_closed_forms_on_the_exact_solution():
    # N[u] = u_t - Lap u - u + u^3. At s = 1 the residual is 0 (exact solution); d r / d s at s = 1 is
    # u_t - Lap u - u + 3 u^3 = f + 2 u^3 (since u_t - Lap u - u + u^3 = f)
    problem = allen_cahn(1.0, 4)
    module = ScaledExact(problem.exact)
    theta = {"s": module.s.detach().clone()}
    fns = residual_functions(module, problem, lambda th, c: {**c, **th}, {}, 0.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True) * torch.rand(12, 1, generator=g, dtype=torch.float64) * 0.9
    t = torch.rand(12, generator=g, dtype=torch.float64)
    f = problem.rhs(t, x)
    r, J = residual_jacobian(fns, theta, [("interior", 1.0, t, x, f)])
    u = problem.exact(t, x)
    assert r.abs().max() < 1e-9 * f.abs().max()
    assert torch.allclose(J[:, 0], f + 2 * u**3, rtol=1e-9, atol=1e-9)
    # boundary/initial value residuals: u - g, derivative u
    rv, Jv = residual_jacobian(fns, theta, [("value", 2.0, t, x, torch.zeros_like(t))])
    assert torch.allclose(rv, 2 * u) and torch.allclose(Jv[:, 0], 2 * u)
    # a wrong operator does not vanish on the exact solution
    wrong = dataclasses.replace(problem, operator=lambda du, t, x: du.u_t - du.lap_x)
    rw = residuals(residual_functions(module, wrong, lambda th, c: {**c, **th}, {}, 0.5), theta,
                   [("interior", 1.0, t, x, f)])
    assert rw.abs().max() > 1e-2


def poisson(d=2):
    # -Lap u = f on the unit disc, u = sin(1.3 x1) cos(0.7 x2) (1 - |x|^2); f by autograd of u in float64
    def exact(x):
        return torch.sin(1.3 * x[..., 0]) * torch.cos(0.7 * x[..., 1]) * (1 - (x**2).sum(-1))

    def rhs(x):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            u = exact(x)
            g = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
            lap = sum(torch.autograd.grad(g[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(d))
        return (-lap).detach()

    return StationaryProblem(name="poisson_gn", domain=Ball(d), operator=lambda u, gu, lu, x: -lu, rhs=rhs,
                             boundary=lambda x: torch.zeros_like(x[..., 0]), exact=exact)


def tiny_cfg(**optim):
    return load_config({"problem": {"d": 2}, "model": {"widths": [16, 16]}, "dtype": "float64",
                        "sampling": {"n_interior": 64, "n_boundary": 0, "n_initial": 0, "n_test": 500,
                                     "sampler": "radial"},
                        "loss": {"hard": "boundary"}, "laplacian": {"method": "forward", "compile": "off"},
                        "optim": {"lr": 3e-3, **optim}, "log_every": 10, "checkpoint_every": 0},
                       TransferRunConfig)


def test_finish_beats_adam_at_equal_steps_and_never_raises_a_fixed_batch_loss():
    problem = poisson()
    adam = sciml.fit(PINN, tiny_cfg(iters=330), problem).payload.trainer
    lm = sciml.fit(PINN, tiny_cfg(iters=300, gn_iters=30, gn_points=256), problem).payload.trainer
    e_adam, e_lm = adam.evaluate()[0], lm.evaluate()[0]
    assert e_lm < 2e-3 and e_lm < e_adam / 5, (e_lm, e_adam)
    # fixed points: each step's loss is the previous step's result, so the losses never rise
    cfg = tiny_cfg(iters=50, gn_iters=15)
    cfg = load_config({**_dict(cfg), "sampling": {**_dict(cfg)["sampling"], "resample": False}}, TransferRunConfig)
    tr = sciml.fit(PINN, cfg, problem).payload.trainer
    losses = [tr.step(50 + 15 + i)["loss"] for i in range(5)]  # five more steps on the same points
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:])), losses


def _dict(cfg):
    from sciml.run import config_to_dict

    d = config_to_dict(cfg)
    d["problem"].pop("name", None)
    return d


def test_family_run_refuses_the_finish():
    cfg = load_config({"problem": {"family": "allen_cahn", "value": 1.0, "d": 3}, "model": {"widths": [8, 8]},
                       "sampling": {"n_interior": 16, "n_boundary": 8, "n_initial": 8, "n_test": 50, "resample": False},
                       "optim": {"iters": 2, "gn_iters": 2}}, TransferRunConfig)
    src = sciml.fit(PINN, load_config({**_dict(cfg), "optim": {"iters": 2}}, TransferRunConfig),
                    allen_cahn(0.0, 3)).payload
    with pytest.raises(ConfigError, match="gn_iters"):
        sciml.fit(Family, cfg, [allen_cahn(v, 3) for v in (0.5, 1.0)], source=src)
    assert math.isfinite(src.history[-1][1])


@pytest.mark.parametrize("widths", [[7], [9, 6], [8, 5, 6]])
def test_forward_laplacian_jacobian_equals_the_hessian_one_on_an_mlp(widths):
    # the per-point residual Jacobian through the forward Laplacian on one point (the default for an MLP)
    # against the exact-Hessian path, float64: an evolution problem with its initial/boundary ansatz and
    # a stationary one with its distance ansatz; 1-3 hidden layers (the first-layer tangent fold differs)
    from sciml.pinn.solver import with_hard_constraints

    g = torch.Generator().manual_seed(3)
    for problem, d, d_in in ((with_hard_constraints(allen_cahn(1.0, 4), "initial_boundary"), 4, 5),  # (t, x)
                             (with_hard_constraints(poisson(3), "boundary"), 3, 3)):
        layers, n = [], d_in
        for w in widths:
            layers += [nn.Linear(n, w), nn.Tanh()]
            n = w
        module = nn.Sequential(*layers, nn.Linear(n, 1)).double()
        theta = {k: v.detach().clone() for k, v in module.named_parameters()}
        build = lambda th, c: {**c, **th}  # noqa: E731
        x = torch.randn(10, d, generator=g, dtype=torch.float64)
        x = x / x.norm(dim=1, keepdim=True) * torch.rand(10, 1, generator=g, dtype=torch.float64) * 0.9
        t = torch.rand(10, generator=g, dtype=torch.float64)
        f = torch.randn(10, generator=g, dtype=torch.float64)
        blocks = [("interior", 0.7, t, x, f), ("value", 2.0, t[:4], x[:4], f[:4])]
        fast = residual_functions(module, problem, build, {}, 0.5, forward=True)
        slow = residual_functions(module, problem, build, {}, 0.5, forward=False)
        assert fast[0] is not slow[0]
        r1, J1 = residual_jacobian(fast, theta, blocks)
        r2, J2 = residual_jacobian(slow, theta, blocks)
        assert torch.allclose(r1, r2, rtol=1e-10, atol=1e-12)
        assert torch.allclose(J1, J2, rtol=1e-9, atol=1e-11), (J1 - J2).abs().max()
        assert J1.abs().max() > 1e-2  # not a vacuous match
