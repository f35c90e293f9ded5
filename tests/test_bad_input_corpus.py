"""The malformed-input corpus as a whole: its size, and every class of bad input that a hostile but
fair user met (issue #20's list) has at least one case. The cases themselves run in
tests/test_bad_input_<area>.py through tests/badinput.py."""

import importlib

AREAS = ("core", "pinn", "dynamics", "conservation", "score", "heavytail")

# situation -> (area, case id): each was a traceback, a silent acceptance, a hang or data loss
REQUIRED = {
    "config with d = 10^9": ("pinn", "d_1e9"),
    "binary garbage as TOML": ("pinn", "binary_garbage_toml"),
    "a Latin-1 file as TOML": ("pinn", "latin1_toml"),
    "an unreadable config": ("pinn", "unreadable_toml_any_user"),
    "--device bogus": ("pinn", "device_bogus"),
    "--threads -1": ("pinn", "threads_negative"),
    "--out inside a file": ("pinn", "out_inside_a_file"),
    "--out on a directory (a file expected)": ("dynamics", "simulate-out-on-a-directory"),
    "--out in an unwritable place": ("pinn", "out_unwritable_any_user"),
    "a truncated checkpoint on --resume": ("pinn", "resume_truncated_checkpoint"),
    "a mismatched checkpoint on --resume": ("pinn", "resume_foreign_checkpoint"),
    "a truncated model for pinn transfer --from": ("pinn", "from_truncated_model"),
    "a truncated model for score sample": ("score", "sample-truncated-model"),
    "a truncated model for heavytail sample": ("heavytail", "sample-model-truncated"),
    "simulate with an absurd --n": ("dynamics", "simulate-absurd-n"),
    "simulate --max-step 0": ("dynamics", "simulate-max-step-zero"),
    "simulate --max-step -1": ("dynamics", "simulate-max-step-negative"),
    "trajectories stored as a group": ("dynamics", "discover-trajectories-a-group"),
    "dt stored as a string": ("dynamics", "discover-dt-string"),
    "corrupt metadata": ("dynamics", "discover-params-not-json"),
    "a huge declared size": ("dynamics", "discover-declared-too-large"),
    "complex-valued trajectories": ("dynamics", "discover-complex"),
    "score train with a negative number of samples": ("score", "train-n-data-negative"),
    "score train with an absurd number of samples": ("score", "train-n-data-absurd"),
    "--set widths that exhaust memory": ("score", "train-width-exhausts-memory"),
    "sample --n-steps -1": ("score", "sample-n-steps-negative"),
    "sample --n-steps 0": ("score", "sample-n-steps-zero"),
    "sample --batch-size 0": ("score", "sample-batch-size-zero"),
    "simulate --amplitude inf": ("dynamics", "simulate-amplitude-inf"),
    "simulate --dt inf": ("dynamics", "simulate-dt-inf"),
    "score sample -n 10^9 (streamed; refused when the file cannot fit)": ("score", "sample-n-1e9-wide"),
    "heavytail train --dim 10^9": ("heavytail", "train-dim-1e9"),
    "pinn train --resume with another config": ("pinn", "resume_mismatching_config"),
    "discover --resume with another config": ("conservation", "resume_other_config"),
    "a malformed config for demo": ("core", "config-binary"),
}


def _cases():
    out = {}
    for area in AREAS:
        mod = importlib.import_module(f"test_bad_input_{area}")
        ids = [c.id for c in mod.CASES]
        assert len(ids) == len(set(ids)), f"{area}: duplicated case ids"
        out[area] = set(ids)
    return out


def test_the_corpus_has_at_least_100_cases_over_every_command():
    cases = _cases()
    assert sum(map(len, cases.values())) >= 100
    assert all(len(v) >= 10 for v in cases.values()), {k: len(v) for k, v in cases.items()}


def test_every_class_of_bad_input_is_in_the_corpus():
    cases = _cases()
    missing = [what for what, (area, cid) in REQUIRED.items() if cid not in cases[area]]
    assert not missing, missing
