"""The same five lines (build a problem, a config, fit, load, read a metric) for every wing: the block
of docs/architecture.md, run once per wing with that wing's names bound, on tiny budgets. Each run
is checked against something known, not against its own output: the loaded payload must be usable
(and agree with the one fit returned) and the metric must be a finite number in its valid range."""

import math

import pytest
import torch

import sciml
from docblocks import run_block


def _pinn():
    from problems.pdes import family_member
    from sciml.pinn import PINN, PINNConfig
    from sciml.pinn.config import ModelConfig, OptimConfig, SamplingConfig

    return dict(
        Method=PINN, metric="rel_l2",
        make_problem=lambda: family_member("allen_cahn", 0.0, 2),
        make_config=lambda: PINNConfig(model=ModelConfig(widths=(16, 16)), optim=OptimConfig(iters=30),
                                       sampling=SamplingConfig(n_interior=64, n_boundary=32, n_initial=32,
                                                               n_test=256), log_every=10))


def _conservation():
    from problems.systems import get_system
    from sciml.conservation import Deflation, DiscoveryConfig
    from sciml.dynamics import simulate

    return dict(
        Method=Deflation, metric="count",
        make_problem=lambda: simulate(get_system("ho1d"), 32, 40, 0.05, generator=torch.Generator().manual_seed(0)),
        make_config=lambda: DiscoveryConfig(steps=40))


def _score():
    from problems.mixtures import unbalanced_2d
    from sciml.score import ScoreConfig, ScoreTraining
    from sciml.score.config import SampleConfig, TrainConfig

    return dict(
        Method=ScoreTraining, metric="loss",
        make_problem=lambda: unbalanced_2d().sample(300, generator=torch.Generator().manual_seed(0)),
        make_config=lambda: ScoreConfig(train=TrainConfig(steps=20, batch_size=64), sample=SampleConfig(n_steps=20)))


def _heavytail():
    from problems.heavy_tails import student_t
    from sciml.heavytail import HeavyTail, HeavyTailConfig
    from sciml.heavytail.config import CriticConfig, GANConfig

    return dict(
        Method=HeavyTail, metric="hill",
        make_problem=lambda: student_t(1.0, 1).sample(500, 0),
        make_config=lambda: HeavyTailConfig(model="gan", steps=20, batch=128, n_samples=2000,
                                            gan=GANConfig(width=16, depth=2), critic=CriticConfig(width=16, depth=2,
                                                                                                  steps=1)))


WINGS = {"pinn": _pinn, "conservation": _conservation, "score": _score, "heavytail": _heavytail}


@pytest.mark.parametrize("wing", list(WINGS))
def test_the_same_five_lines_work_for_every_wing(wing, tmp_path):
    names = WINGS[wing]()
    ns = run_block("architecture.md", "five-lines", {"sciml": sciml, "run_dir": tmp_path / "run", **names})
    res, payload, value = ns["res"], ns["payload"], ns["value"]
    assert res.status == sciml.Status.SUCCESS, res.message
    assert isinstance(value, float) and math.isfinite(value)
    assert type(payload) is type(res.payload)
    assert (tmp_path / "run" / "config.toml").is_file() and (tmp_path / "run" / "meta.json").is_file()
    if wing == "conservation":
        assert value == payload.n_conserved and 0 <= value <= 1  # a 1-d oscillator has one integral
    if wing == "pinn":
        assert 0 < value < 10
        for (k, a), (k2, b) in zip(sorted(payload.params.items()), sorted(res.payload.params.items())):
            assert k == k2 and torch.equal(a.cpu(), b.cpu())
    if wing == "score":
        x = payload.generate(64, generator=torch.Generator().manual_seed(0), show_progress=False)
        assert x.shape == (64, 2) and torch.isfinite(x).all()
    if wing == "heavytail":
        x = payload.sample(64, generator=torch.Generator().manual_seed(0))
        assert x.shape == (64, 1) and torch.isfinite(torch.as_tensor(x)).all() and value > 0
