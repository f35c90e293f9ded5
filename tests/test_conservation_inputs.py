"""What a candidate's MLP sees (``network.inputs``): the automatic rule scales a coordinate that winds far
(the pendulum's q on rotating orbits) by its robust spread, and a network candidate then reaches its floor
on the pendulum's energy with the library off; standardised inputs leave it far above. (Whitened inputs:
tests/test_conservation_whitening.py.)"""

from __future__ import annotations

import math

import pytest
import torch

import sciml
from problems.systems import get_system
from sciml.conservation import Deflation, DiscoveryConfig, NetworkConfig
from sciml.conservation.model import ConservedQuantity, input_scaling
from sciml.dynamics import simulate

COUNTED = 10 ** DiscoveryConfig.floor_decades   # the floor rule: held-out loss / own floor below 10^0.75

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pendulum():
    """H = p^2/2 - cos q; a fifth of the orbits rotate, so q winds far (sigma / sigma_R = 7.1 on these data)."""
    system = get_system("pendulum")
    return system, simulate(system, 64, 300, 0.1, generator=torch.Generator().manual_seed(0))


def test_auto_scaling_by_quantiles():
    """Normal and uniform coordinates keep mean and standard deviation (sigma / sigma_R = 1 and 0.78); a
    coordinate with 10% of its states 50 spreads out is centred on its median and scaled by IQR / 1.349;
    'raw' is the identity, and the module computes (x - a) / s before its MLP."""
    g = torch.Generator().manual_seed(0)
    n = 20_000
    normal = torch.randn(n, generator=g, dtype=torch.float64)
    uniform = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    wide = torch.randn(n, generator=g, dtype=torch.float64)
    wide[: n // 10] += 50.0
    x = torch.stack([normal, uniform, wide], 1)
    shift, scale = x.mean(0), x.std(0)
    a, s = input_scaling(x, shift, scale, "auto")
    assert torch.equal(a[:2], shift[:2]) and torch.equal(s[:2], scale[:2])
    q = torch.quantile(wide, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    assert a[2] == q[1] and math.isclose(s[2], (q[2] - q[0]) / 1.349, rel_tol=1e-12)
    assert scale[2] > 10 * s[2]   # the spread the rule refuses
    a, s = input_scaling(x, shift, scale, "raw")
    assert torch.equal(a, torch.zeros(3, dtype=torch.float64)) and torch.equal(s, torch.ones(3, dtype=torch.float64))
    m = ConservedQuantity(3, shift, scale, 8, 1, input_shift=a + 1, input_scale=s * 2).double()
    y = torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert torch.equal(m(y), m.net((y - 1) / 2))


def test_old_state_dicts_load_with_their_inputs():
    """A state dict written before the input scaling was a buffer: the MLP saw z (standardised) or x (raw)."""
    shift, scale = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5])
    for raw in (False, True):
        m = ConservedQuantity(2, shift, scale, 8, 1, raw_inputs=raw)
        st = {k: v for k, v in m.state_dict().items() if not k.startswith("input_")}
        fresh = ConservedQuantity(2, torch.zeros(2), torch.ones(2), 8, 1, raw_inputs=raw)
        fresh.load_state_dict(st)
        x = torch.randn(4, 2)
        assert torch.equal(fresh(x), m.net(x if raw else (x - shift) / scale))


def _run(tr, inputs: str):
    """One candidate, library off, one initialisation, a fixed 2500-step cosine (about 20 s of one core)."""
    cfg = DiscoveryConfig(library_degree=0, max_laws=1, steps=2500, restarts=1, batch_size=256, patience=0,
                          network=NetworkConfig(inputs=inputs))
    res = sciml.fit(Deflation, cfg, tr)
    st = res.payload.fits[0].stats
    return res, st["median"] / st["floor_loss"]


def test_default_inputs_reach_the_floor_on_the_pendulum(pendulum):
    """Library off, default inputs ('auto'): q is scaled by its robust spread, and the candidate ends within
    the floor rule's factor of its own floor, is counted, and its gradient is parallel to that of the exact
    energy, (sin q, p), at the held-out states."""
    system, tr = pendulum
    x = torch.as_tensor(tr.X.reshape(-1, 2))
    a, s = input_scaling(x, x.mean(0), x.std(0))
    assert s[0] < x[:, 0].std() / 4 and s[1] == x.std(0)[1]   # the rule fired on q, not on p
    res, ratio = _run(tr, "auto")
    assert ratio < COUNTED and res.metrics["count"] == 1
    ho = torch.as_tensor(tr.X[res.payload.split[1]].reshape(-1, 2))
    g = torch.as_tensor(res.payload.conserved[0].grad(ho.numpy()))
    exact = torch.stack([torch.sin(ho[:, 0]), ho[:, 1]], 1)
    cos = (g * exact).sum(1).abs() / (g.norm(dim=1) * exact.norm(dim=1))
    assert float(cos.median()) > 0.999


def test_standardised_inputs_stay_above_the_floor(pendulum):
    """The same candidate on standardised inputs (q divided by its full standard deviation) stays far above
    its floor and is not counted."""
    _, tr = pendulum
    res, ratio = _run(tr, "standardised")
    assert ratio > 10 * COUNTED and res.metrics["count"] == 0


def _same(a, b) -> None:
    """Bit-identical discoveries: every parameter and buffer, statistic and training loss."""
    assert a.n_conserved == b.n_conserved
    for la, lb in zip(a.laws, b.laws):
        sa, sb = la.module.state_dict(), lb.module.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [(f.loss, f.stats, f.history) for f in a.fits] == [(f.loss, f.stats, f.history) for f in b.fits]


def test_restarted_cosine_and_its_resume(tmp_path):
    """A candidate above the bar whose validation loss still falls gets a second cosine at the end of the
    first (here forced: restart_factor 1e-9, a bar of 10^0.01): its first `steps` training losses equal
    those of the run without restarts (restart_factor = 0, which the patience rule stops at `steps`), and a
    run killed inside the second cosine resumes bit for bit."""
    tr = simulate(get_system("ho2d-iso"), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    base = dict(library_degree=0, max_laws=1, steps=20, restarts=1, batch_size=64, patience=2,
                patience_factor=1e9, eval_every=3, max_steps=40, floor_decades=0.01, checkpoint_every=5,
                network=NetworkConfig(width=8, depth=1))
    on = DiscoveryConfig(**base, restart_factor=1e-9)
    off = DiscoveryConfig(**base, restart_factor=0.0)
    a = sciml.fit(Deflation, on, tr, out=tmp_path / "a")
    b = sciml.fit(Deflation, off, tr).payload
    fa, fb = a.payload.fits[0], b.fits[0]
    assert (fa.stats["cosines"], fa.stats["steps"]) == (2, 40)
    assert (fb.stats["cosines"], fb.stats["steps"]) == (1, 20)   # patience: stopped at the end of its cosine
    assert fa.history[:20] == fb.history
    c = sciml.fit(Deflation, on, tr, out=tmp_path / "c", stop_at=27)
    c = sciml.fit(Deflation, on, tr, out=tmp_path / "c", resume=True)
    _same(a.payload, c.payload)
