"""Malformed input for ``sciml discover``: every case exits 2 with one line naming the culprit, before any
output exists (the harness: tests/badinput.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import sciml
from badinput import Case, check_case
from problems.systems import get_system
from sciml.conservation import Deflation, DiscoveryConfig
from sciml.dynamics import save_trajectories, simulate
from sciml.run import config_to_dict, dump_toml, load_config

SMALL = {"steps": 5, "library_degree": 0, "restarts": 1, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Prepared files: a good trajectory file and bad ones, bad configs, a plain file, and run folders
    (one with a config and a checkpoint of something else, one with a truncated checkpoint, one with an
    unreadable config, and a real run stopped after its checkpoint at step 2)."""
    d = tmp_path_factory.mktemp("discover_data")
    tr = simulate(get_system("ho1d"), 8, 20, 0.1, generator=torch.Generator().manual_seed(0))
    save_trajectories(tr, d / "good.h5")
    with h5py.File(d / "nolayout.h5", "w") as fh:
        fh["trajectories"] = tr.X
        fh.attrs["dt"] = 0.1
        fh.attrs["layout"] = "none"
    with h5py.File(d / "rank2.h5", "w") as fh:
        fh["trajectories"] = np.zeros((3, 10))
    (d / "text.h5").write_text("trajectories, but as text\n")
    (d / "bad.toml").write_text("steps = [1, \n")
    (d / "unknown.toml").write_text("stepz = 3\n")
    (d / "badtype.toml").write_text('steps = "many"\n')
    (d / "afile").write_text("not a folder\n")
    config = dump_toml(config_to_dict(DiscoveryConfig(steps=5)))
    for name in ("run_ok", "run_trunc"):
        (d / name / "checkpoints").mkdir(parents=True)
        (d / name / "config.toml").write_text(config)
    (d / "run_trunc" / "checkpoints" / "ckpt_5.pt").write_bytes(b"PK\x03\x04 cut short")
    torch.save({"step": 5, "elapsed": 0.0, "weights": torch.zeros(3)}, d / "run_ok" / "checkpoints" / "ckpt_5.pt")
    # a real run stopped after a checkpoint, and other trajectories of the same shape
    small = load_config(dict(SMALL), DiscoveryConfig)
    sciml.fit(Deflation, small, tr, out=d / "run_real", stop_at=3)
    save_trajectories(simulate(get_system("ho1d"), 8, 20, 0.1, generator=torch.Generator().manual_seed(1)),
                      d / "other.h5")
    (d / "run_badtoml").mkdir()
    (d / "run_badtoml" / "config.toml").write_text("steps = = 5\n")
    return d


GOOD = "{data}/good.h5"
OUT = ("--out", "{tmp}/r")
CASES = [
    Case("missing_file", ("discover", "{tmp}/nope.h5", *OUT), "nope.h5", "data file"),
    Case("not_hdf5", ("discover", "{data}/text.h5", *OUT), "text.h5", "data file"),
    Case("wrong_rank", ("discover", "{data}/rank2.h5", *OUT), "rank", "data file"),
    Case("config_missing", ("discover", GOOD, "--config", "{tmp}/none.toml", *OUT), "none.toml", "config file"),
    Case("config_not_toml", ("discover", GOOD, "--config", "{data}/bad.toml", *OUT), "toml", "config file"),
    Case("config_unknown_key", ("discover", GOOD, "--config", "{data}/unknown.toml", *OUT), "stepz", "config key"),
    Case("config_wrong_type", ("discover", GOOD, "--config", "{data}/badtype.toml", *OUT), "steps", "config value"),
    Case("set_out_of_range", ("discover", GOOD, "--set", "lr=-1", *OUT), "lr", "config value"),
    Case("set_unknown_rule", ("discover", GOOD, "--set", "rule=median", *OUT), "rule", "config value"),
    Case("set_nested_choice", ("discover", GOOD, "--set", "network.activation=relu", *OUT), "network.activation",
         "config value"),
    Case("set_without_value", ("discover", GOOD, "--set", "steps", *OUT), "steps", "config key"),
    Case("steps_zero", ("discover", GOOD, "--steps", "0", *OUT), "steps", "config value"),
    Case("too_many_laws", ("discover", GOOD, "--max-laws", "3", *OUT), "max_laws", "config vs data"),
    Case("involution_without_qp", ("discover", "{data}/nolayout.h5", "--involution", *OUT), "involution",
         "config vs data"),
    Case("threads_zero", ("discover", GOOD, "--threads", "0", *OUT), "--threads", "option"),
    Case("device_unknown", ("discover", GOOD, "--device", "bogus", *OUT), "--device", "option"),
    Case("max_seconds_zero", ("discover", GOOD, "--max-seconds", "0", *OUT), "--max-seconds", "option"),
    Case("out_is_a_file", ("discover", GOOD, "--out", "{data}/afile"), "--out", "run directory"),
    Case("out_under_a_file", ("discover", GOOD, "--out", "{data}/afile/run"), "--out", "run directory"),
    Case("out_holds_a_run", ("discover", GOOD, "--steps", "5", "--out", "{data}/run_ok"), "--out", "run directory"),
    Case("resume_nothing", ("discover", GOOD, "--resume", "--out", "{tmp}/empty"), "--resume", "resume"),
    Case("resume_other_config", ("discover", GOOD, "--steps", "7", "--resume", "--out", "{data}/run_ok"), "steps",
         "resume"),
    Case("resume_truncated_checkpoint", ("discover", GOOD, "--steps", "5", "--resume", "--out", "{data}/run_trunc"),
         "ckpt_5.pt", "resume"),
    Case("resume_foreign_checkpoint", ("discover", GOOD, "--steps", "5", "--resume", "--out", "{data}/run_ok"),
         "ckpt_5.pt", "resume"),
    Case("resume_other_data", ("discover", "{data}/other.h5", "--set", *(f"{k}={v}" for k, v in SMALL.items()),
                               "--resume", "--out", "{data}/run_real"), "trajectories", "resume"),
    Case("resume_unreadable_config", ("discover", GOOD, "--resume", "--out", "{data}/run_badtoml"), "config.toml",
         "resume"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, data: Path) -> None:
    check_case(case, tmp_path, data)


def test_corpus_covers_every_class():
    """At least 12 cases, over data files, config files, keys and values, options, run folders and resume."""
    assert len(CASES) >= 12
    assert {c.cls for c in CASES} >= {"data file", "config file", "config key", "config value", "config vs data",
                                      "option", "run directory", "resume"}
