"""sciml.fit(Deflation, ...): the five-line usage, kill-and-resume bit-identity, load, the count-rule registry
and the candidates' seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sciml
from problems.systems import get_system
from sciml.conservation import (COUNT_RULES, Deflation, Discovery, DiscoveryConfig, FloorRule, JumpRule,
                                candidate_seeds)
from sciml.dynamics import simulate
from sciml.run import ConfigError, Status, load_config


pytestmark = pytest.mark.usefixtures("one_thread")


def test_five_line_usage(tmp_path):
    """The isotropic oscillator's three quadratic integrals come out of the polynomial start as exact
    polynomials (no training step at all), and the run directory reads back as the same Discovery."""
    problem = simulate(get_system("ho2d-iso"), 128, 60, 0.05, generator=torch.Generator().manual_seed(0))
    cfg = DiscoveryConfig(steps=200)
    res = sciml.fit(Deflation, cfg, problem, out=tmp_path)
    payload = Deflation.load(tmp_path)
    value = res.metrics["count"]

    assert value == 3 and res.status == Status.SUCCESS and res.step == 1   # exact polynomials take no steps
    assert isinstance(payload, Discovery) and payload.n_conserved == 3
    assert [f.stats["start"] for f in payload.fits] == ["exact polynomial"] * 3
    _assert_same_discovery(res.payload, payload)
    # the learned quantities are callables, constant along each held-out trajectory: their spread in
    # time is below 1e-3 of their spread over the trajectories' initial states
    X = problem.X[payload.split[1]]                       # (n, T, 4)
    for H in payload.conserved:
        h = H(X)
        assert h.shape == X.shape[:2]
        assert h.std(axis=1).max() < 1e-3 * h[:, 0].std()


def _assert_same_discovery(a: Discovery, b: Discovery) -> None:
    """Bit-identical learned state: every network's parameters and buffers, every statistic, the count."""
    assert a.n_conserved == b.n_conserved and a.decision == b.decision
    assert len(a.laws) == len(b.laws)
    for la, lb in zip(a.laws, b.laws):
        sa, sb = la.module.state_dict(), lb.module.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k].cpu(), sb[k].cpu()), k
    for fa, fb in zip(a.fits, b.fits):
        assert (fa.index, fa.loss, fa.train_loss, fa.stats) == (fb.index, fb.loss, fb.train_loss, fb.stats)
        assert fa.history == fb.history
    assert all(np.array_equal(x, y) for x, y in zip(a.split, b.split))


# a fixed budget (patience 0: exactly `steps` steps per candidate); the patience rule has its own test
_NETS = dict(library_degree=0, steps=20, restarts=2, warmup_fraction=0.4, batch_size=64, lr=1e-2,
             checkpoint_every=5, log_every=5, max_laws=2, patience=0, network={"width": 8, "depth": 1})


@pytest.mark.parametrize("system, cfg, kills", [
    # networks only, 2 candidates x 20 steps, warm-up 8 steps: killed at 7 (resumed from the checkpoint
    # at 5, inside the warm-up: all initialisations), at 12 (from 10: after the warm-up, in the middle of
    # the first candidate) and at 22 (from 20: between candidates, the first just frozen)
    ("ho2d-iso", _NETS, (7, 12, 22)),
    # polynomial start: two exact polynomials frozen in step 0, then a trained third candidate killed at 12
    ("ho2d-incommensurate", dict(_NETS, library_degree=2, max_laws=3), (12,)),
])
def test_kill_and_resume_is_bit_identical(tmp_path, system, cfg, kills):
    tr = simulate(get_system(system), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    config = load_config(cfg, DiscoveryConfig)
    a = sciml.fit(Deflation, config, tr, out=tmp_path / "a")
    starts = [f.stats["start"] for f in a.payload.fits]
    n_trained = sum(s != "exact polynomial" for s in starts)
    assert a.status == Status.SUCCESS and a.step == 20 * n_trained
    if system == "ho2d-incommensurate":
        assert starts[:2] == ["exact polynomial"] * 2 and n_trained == 1
    for k in kills:
        out = tmp_path / f"b{k}"
        b = sciml.fit(Deflation, config, tr, out=out, stop_at=k)
        assert b.status == Status.INTERRUPTED and b.step == k
        assert (out / "checkpoints" / f"ckpt_{k - k % 5}.pt").is_file()
        b = sciml.fit(Deflation, config, tr, out=out, resume=True)
        assert b.status == Status.SUCCESS and b.step == a.step
        _assert_same_discovery(a.payload, b.payload)
        _assert_same_discovery(a.payload, Deflation.load(out))
        assert b.metrics["count"] == a.metrics["count"]


def test_count_rules_registry_and_rule_objects(tmp_path):
    """The config's choices are the registry's names; a name or an object decides the same stored
    statistics (the training does not depend on the rule), a jump bar of 30 decades counts nothing."""
    assert COUNT_RULES.names() == ("floor", "jump")
    field = DiscoveryConfig.__dataclass_fields__["rule"]
    assert field.metadata["choices"] == COUNT_RULES.names()
    cfg = DiscoveryConfig(max_laws=2, library_degree=0, steps=30, restarts=1)
    assert isinstance(COUNT_RULES.resolve(cfg.rule), FloorRule)
    tr = simulate(get_system("ho2d-iso"), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    by_name = sciml.fit(Deflation, cfg, tr, rule="jump").payload
    by_obj = sciml.fit(Deflation, cfg, tr, rule=JumpRule(1.0)).payload
    none = sciml.fit(Deflation, cfg, tr, rule=JumpRule(30.0), out=tmp_path).payload
    assert by_name.decision == by_obj.decision and isinstance(by_name.rule, JumpRule)
    assert none.n_conserved == 0 and none.losses == by_name.losses
    assert Deflation.load(tmp_path).rule == JumpRule(30.0)
    with pytest.raises(ConfigError, match="rule"):
        sciml.fit(Deflation, cfg, tr, rule="median")


def test_candidate_seeds_are_the_published_streams():
    """The arithmetic streams the reproduction tables were computed with (not derive_seed)."""
    s = candidate_seeds(3, 2, 3)
    assert s.data == 3 and s.batches == 3 * 7919 + 2
    assert s.inits == (3000 + 62, 3000 + 63, 3000 + 64, 3000 + 65)


def test_config_checks_before_any_output(tmp_path):
    """Too many candidates for d, and involution without a qp layout: ConfigError, nothing written."""
    tr = simulate(get_system("ho1d"), 8, 20, 0.1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="max_laws"):
        sciml.fit(Deflation, DiscoveryConfig(max_laws=2), tr, out=tmp_path / "r")
    from dataclasses import replace

    with pytest.raises(ConfigError, match="involution"):
        sciml.fit(Deflation, DiscoveryConfig(involution=True), replace(tr, layout="none"), out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_budget_stop_keeps_the_finished_candidates(tmp_path):
    """A wall-clock budget smaller than one step stops after the first step with the status BUDGET; the
    payload is the partial discovery (no candidate finished yet: count 0), and --resume finishes it."""
    tr = simulate(get_system("ho1d"), 8, 20, 0.1, generator=torch.Generator().manual_seed(0))
    cfg = DiscoveryConfig(library_degree=0, steps=10, restarts=1)
    res = sciml.fit(Deflation, cfg, tr, out=tmp_path, max_seconds=1e-9)
    assert res.status == Status.BUDGET and res.step == 1 and res.payload.fits == []
    assert res.metrics["count"] == 0 and "0 of 1 candidates" in res.payload.message
    done = sciml.fit(Deflation, cfg, tr, out=tmp_path, resume=True)
    assert done.status == Status.SUCCESS and len(done.payload.fits) == 1 and math.isfinite(done.payload.losses[0])


@pytest.mark.parametrize("patience, n_steps, kills", [
    # a factor no loss can beat: only the first evaluation (step 11: warm-up 8, then every 3) improves, so
    # at step 20 (the end of the cosine) three evaluations without one have passed: stop at `steps`
    (2, 20, (12, 22)),
    # patience never runs out: every candidate trains on at lr_final to the cap, max_steps = 30; killed
    # past `steps` (27: resumed from 25) and in the second candidate (42: from 40)
    (100, 30, (27, 42)),
])
def test_patience_rule_and_its_resume_are_bit_identical(tmp_path, patience, n_steps, kills):
    """The patience rule stops a candidate at the end of its cosine (`steps`) or lets it train on to
    `max_steps`; a run killed anywhere (validation history and all) resumes bit-identically."""
    tr = simulate(get_system("ho2d-iso"), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    config = load_config(dict(_NETS, patience=patience, patience_factor=1e9, eval_every=3, max_steps=30),
                         DiscoveryConfig)
    a = sciml.fit(Deflation, config, tr, out=tmp_path / "a")
    assert a.status == Status.SUCCESS and a.step == 2 * n_steps
    assert [f.stats["steps"] for f in a.payload.fits] == [n_steps, n_steps]
    for k in kills:
        out = tmp_path / f"b{k}"
        b = sciml.fit(Deflation, config, tr, out=out, stop_at=k)
        assert b.status == Status.INTERRUPTED and b.step == k
        b = sciml.fit(Deflation, config, tr, out=out, resume=True)
        assert b.status == Status.SUCCESS and b.step == a.step
        _assert_same_discovery(a.payload, b.payload)


def test_without_patience_the_steps_are_exact():
    """patience = 0: every trained candidate takes exactly `steps` steps, whatever max_steps says."""
    tr = simulate(get_system("ho1d"), 8, 20, 0.1, generator=torch.Generator().manual_seed(0))
    cfg = DiscoveryConfig(library_degree=0, steps=12, restarts=1, patience=0, max_steps=50, eval_every=1)
    res = sciml.fit(Deflation, cfg, tr)
    assert res.step == 12 and res.payload.fits[0].stats["steps"] == 12


def test_patience_leaves_the_cosine_steps_unchanged():
    """The patience rule only measures during the cosine (no random draw, no parameter change) and acts
    after it: the first candidate's `steps` training losses are bit-identical to a fixed budget's, so
    published rows whose candidates stop at `steps` keep their numbers."""
    tr = simulate(get_system("ho2d-iso"), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    fixed = sciml.fit(Deflation, load_config(_NETS, DiscoveryConfig), tr).payload
    longer = sciml.fit(Deflation, load_config(dict(_NETS, patience=100, eval_every=3, max_steps=30),
                                              DiscoveryConfig), tr).payload
    assert longer.fits[0].stats["steps"] == 30 and fixed.fits[0].stats["steps"] == 20
    assert longer.fits[0].history[:20] == fixed.fits[0].history
