"""How long a network candidate trains: it must reach its own floor on a non-polynomial integral with the
polynomial library off, where the old fixed small budget leaves it far above."""

from __future__ import annotations

import pytest
import torch

import sciml
from problems.systems import get_system
from sciml.conservation import Deflation, DiscoveryConfig, NetworkConfig, span_check
from sciml.dynamics import simulate

COUNTED = 10 ** DiscoveryConfig.floor_decades   # the floor rule: held-out loss / own floor below 10^0.75
NET = NetworkConfig(width=16, depth=2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sir():
    """SIR epidemic in (S, I): one integral, C = S + I - (gamma/beta) ln S (logarithmic, so no polynomial)."""
    system = get_system("sir")
    return system, simulate(system, 64, 300, 0.1, generator=torch.Generator().manual_seed(0))


def _ratio(res) -> float:
    st = res.payload.fits[0].stats
    return st["median"] / st["floor_loss"]


def test_network_reaches_its_floor_on_a_log_integral(sir):
    """Library off, networks only: with a 1000-step cosine and the patience rule (on at lr_final while the
    validation loss falls, up to 2000 steps) the candidate's held-out loss is within the floor rule's
    factor of its own floor, it is counted, and its gradient is that of C (the exact integral scores its
    floor on these data: ratio 1.00, docs/conservation.md)."""
    system, tr = sir
    res = sciml.fit(Deflation, DiscoveryConfig(library_degree=0, steps=1000), tr)
    assert res.payload.fits[0].stats["start"].startswith("random")
    assert _ratio(res) < COUNTED and res.metrics["count"] == 1
    ho = tr.X[res.payload.split[1]].reshape(-1, 2)
    assert span_check(res.payload.conserved, system.invariants, ho).sin_true_vs_learned < 0.1


def test_old_fixed_small_budget_stays_above_the_floor(sir):
    """The same candidate with the fixed 300 steps the small tests used stops orders of magnitude above
    its floor and is not counted."""
    _, tr = sir
    res = sciml.fit(Deflation, DiscoveryConfig(library_degree=0, steps=300, patience=0), tr)
    assert res.step == 300 and _ratio(res) > 100 * COUNTED and res.metrics["count"] == 0


def test_lbfgs_finish_lowers_the_full_batch_objective():
    """The second-order finish (strong Wolfe line search) never raises its objective, the batch mean of
    log loss over its fixed points, and with `finish_steps` a run goes through it (one step per candidate
    here: no Adam step is needed for the finish to run after a 1-step budget). 30 iterations lowered it by
    1.9 on an AMD EPYC and by only 0.8 on an Intel Xeon, 60 by 1.5 there: the iteration count is not tuned."""
    from sciml.conservation.candidate import lbfgs_finish, start_candidate

    tr = simulate(get_system("ho1d"), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    cfg = DiscoveryConfig(library_degree=0, steps=1, restarts=1, patience=0, network=NET)
    m = Deflation.build(cfg, tr, device=torch.device("cpu"))
    c = start_candidate(1, m.data, m.spans, cfg, m.device, m.dtype)
    before = [p.detach().clone() for p in c.inits[0].model.parameters()]
    trace = lbfgs_finish(c.inits[0], m.data, m.spans, cfg, 60, points=512)
    assert len(trace) > 2 and trace[-1] < trace[0] - 1.0      # decades of loss: log10 e ~ 0.43 per unit
    assert any(not torch.equal(a, p) for a, p in zip(before, c.inits[0].model.parameters()))
    res = sciml.fit(Deflation, DiscoveryConfig(library_degree=0, steps=1, restarts=1, patience=0, finish_steps=60,
                                               network=NET), tr)
    plain = sciml.fit(Deflation, DiscoveryConfig(library_degree=0, steps=1, restarts=1, patience=0,
                                                 network=NET), tr)
    assert res.step == plain.step == 1 and res.payload.losses[0] < plain.payload.losses[0]


def test_levenberg_marquardt_finish_lowers_an_untrained_candidate_by_decades():
    """The Gauss-Newton finish (finish = "lm") from a network after one Adam step: 200 damped steps on fresh
    batches lower the held-out loss by more than 1.5 decades from every batch seed (a wrong Jacobian or a
    step taken uphill cannot), and a run with the finish ends with a candidate loss 30x below the same run
    without it. Whether it reaches the candidate's own floor depends on the batches: on a 2-core EPYC one
    seed of four did (2.0x the floor), three stopped on one plateau (2,400-2,700x, ln loss -4.5, the
    damping at 10-300); on a 2-core Xeon seed 0 reached 2x. It is applied only to a candidate the count
    would refuse."""
    from sciml.conservation.candidate import lm_finish, start_candidate, validation_loss

    tr = simulate(get_system("ho1d"), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    cfg = DiscoveryConfig(library_degree=0, steps=1, restarts=1, patience=0, network=NET)
    m = Deflation.build(cfg, tr, device=torch.device("cpu"))
    for seed in (0, 1, 2):
        c = start_candidate(1, m.data, m.spans, cfg, m.device, m.dtype)
        val0, floor = validation_loss(c.inits[0], m.data, m.spans, cfg, floor=True)
        trace = lm_finish(c.inits[0], m.data, m.spans, cfg, 200, points=512, seed=seed)
        val = validation_loss(c.inits[0], m.data, m.spans, cfg)
        assert val0 > 1e3 * floor and val < val0 / 30, (seed, val0, val, floor)
        assert trace[-1] < trace[0] - 2.5                 # the batch mean of ln(loss): more than a decade
    lm = sciml.fit(Deflation, DiscoveryConfig(library_degree=0, steps=1, restarts=1, patience=0, finish="lm",
                                              finish_steps=200, network=NET), tr)
    plain = sciml.fit(Deflation, DiscoveryConfig(library_degree=0, steps=1, restarts=1, patience=0, network=NET), tr)
    assert lm.payload.losses[0] < plain.payload.losses[0] / 30
