"""The malformed-input corpus of `sciml pinn train | transfer | family`: every case exits 2 with one
line naming the culprit, no traceback, nothing written (see tests/badinput.py), and no byte of the
prepared runs it points at changes (a refused resume must not touch the run's config.toml or meta.json)."""

import hashlib
import os
import shutil
import stat

import pytest
import torch

from badinput import Case, check_case, run_cli
from sciml.run import dump_toml

TINY = {"seed": 0, "log_every": 2, "checkpoint_every": 2,
        "problem": {"family": "allen_cahn", "value": 0.0, "d": 2}, "model": {"widths": [8, 8]},
        "sampling": {"n_interior": 16, "n_boundary": 8, "n_initial": 8, "n_test": 50, "resample": False},
        "optim": {"iters": 4}, "transfer": {"targets": [1.0, 2.0], "s_lr": 1e-3}}


def _with(**over):
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY.items()}
    for table, kv in over.items():
        out[table] = {**out.get(table, {}), **kv}
    return dump_toml(out)


def _prepare(d):
    """Config files, a finished train run and a family run, and damaged copies of them."""
    (d / "tiny.toml").write_text(dump_toml(TINY))
    (d / "garbage.toml").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.toml").write_bytes("seed = 0\n# d\xe9j\xe0 vu\n[problem]\nd = 2\n".encode("latin-1"))
    (d / "unknown_key.toml").write_text(_with(model={"widht": 3}))
    (d / "wrong_type.toml").write_text(_with(optim={"iters": "many"}))
    (d / "out_of_range.toml").write_text(_with(optim={"lr": -1.0}))
    (d / "huge_d.toml").write_text(_with(problem={"d": 10**9}))
    (d / "huge_widths.toml").write_text(_with(model={"widths": [10**7, 10**7]}))
    (d / "bad_family.toml").write_text(_with(problem={"family": "navier_stokes"}))
    (d / "bad_sampler.toml").write_text(_with(sampling={"sampler": "sobol"}))
    (d / "resample.toml").write_text(_with(sampling={"resample": True}))
    (d / "hard.toml").write_text(_with(loss={"hard": "initial"}))
    (d / "unreadable.toml").write_text(dump_toml(TINY))
    os.chmod(d / "unreadable.toml", 0)
    (d / "afile").write_text("not a folder")
    (d / "readonly").mkdir()
    os.chmod(d / "readonly", stat.S_IRUSR | stat.S_IXUSR)
    assert run_cli(["pinn", "train", str(d / "tiny.toml"), "--out", str(d / "run")])[0] == 0
    assert run_cli(["pinn", "family", "--from", str(d / "run"), "--config", str(d / "tiny.toml"),
                    "--out", str(d / "family_run")])[0] == 0
    latest = "checkpoints/ckpt_4.pt"
    shutil.copytree(d / "run", d / "trunc_ckpt")
    raw = (d / "run" / latest).read_bytes()
    (d / "trunc_ckpt" / latest).write_bytes(raw[: len(raw) // 3])
    shutil.copytree(d / "run", d / "foreign_ckpt")
    torch.save({"step": 4, "model": {"w": torch.zeros(3)}}, d / "foreign_ckpt" / latest)
    (d / "trunc_model").mkdir()
    raw = (d / "run" / "model.pt").read_bytes()
    (d / "trunc_model" / "model.pt").write_bytes(raw[: len(raw) // 2])
    (d / "foreign_model").mkdir()
    torch.save({"net": {"w": torch.zeros(3)}}, d / "foreign_model" / "model.pt")
    (d / "foreign_model" / "meta.json").write_text('{"command": "score train"}')
    (d / "no_model").mkdir()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is fastest, and immune to a busy machine
    d = tmp_path_factory.mktemp("pinn_bad_data")
    _prepare(d)
    yield d
    torch.set_num_threads(threads)
    os.chmod(d / "readonly", stat.S_IRWXU)
    os.chmod(d / "unreadable.toml", stat.S_IRUSR | stat.S_IWUSR)


TRAIN = ("pinn", "train", "{data}/tiny.toml", "--out", "{tmp}/r")
TRANSFER = ("pinn", "transfer", "--from", "{data}/run", "--config", "{data}/tiny.toml", "--out", "{tmp}/t")
FAMILY = ("pinn", "family", "--from", "{data}/run", "--config", "{data}/tiny.toml", "--out", "{tmp}/f")
RESUME = ("pinn", "train", "{data}/tiny.toml", "--resume", "--out")


def _train(conf):
    return ("pinn", "train", f"{{data}}/{conf}", "--out", "{tmp}/r")


CASES = [
    Case("binary_garbage_toml", _train("garbage.toml"), "garbage.toml", "config"),
    Case("latin1_toml", _train("latin1.toml"), "utf-8", "config"),
    Case("unreadable_toml", _train("unreadable.toml"), "unreadable.toml", "config"),
    Case("missing_toml", _train("nothing.toml"), "nothing.toml", "config"),
    # unreadable and unwritable even for root (CI runs as root, where chmod does not stop reads)
    Case("unreadable_toml_any_user", ("pinn", "train", "/proc/self/mem", "--out", "{tmp}/r"), "cannot read", "config"),
    Case("out_unwritable_any_user", ("pinn", "train", "{data}/tiny.toml", "--out", "/proc/sciml-run"), "--out", "out"),
    Case("unknown_key", _train("unknown_key.toml"), "model.widht", "config"),
    Case("wrong_type", _train("wrong_type.toml"), "optim.iters", "config"),
    Case("out_of_range", _train("out_of_range.toml"), "optim.lr", "config"),
    Case("unknown_family", _train("bad_family.toml"), "problem.family", "config"),
    Case("unknown_sampler", _train("bad_sampler.toml"), "sampling.sampler", "config"),
    Case("d_1e9", _train("huge_d.toml"), "problem.d", "size"),
    Case("huge_widths", _train("huge_widths.toml"), "model.widths", "size"),
    Case("device_bogus", (*TRAIN, "--device", "bogus"), "--device", "device"),
    Case("threads_negative", (*TRAIN, "--threads", "-1"), "--threads", "threads"),
    Case("threads_zero", (*TRAIN, "--threads", "0"), "--threads", "threads"),
    Case("out_inside_a_file", ("pinn", "train", "{data}/tiny.toml", "--out", "{data}/afile/run"), "--out", "out"),
    Case("out_unwritable", ("pinn", "train", "{data}/tiny.toml", "--out", "{data}/readonly/run"), "--out", "out"),
    Case("out_holds_a_run", ("pinn", "train", "{data}/tiny.toml", "--out", "{data}/run"), "--out", "out"),
    Case("max_seconds_zero", (*TRAIN, "--max-seconds", "0"), "--max-seconds", "budget"),
    Case("set_bad_syntax", (*TRAIN, "--set", "optim.lr"), "--set", "set"),
    Case("set_unknown_key", (*TRAIN, "--set", "optim.lrr=1"), "optim.lrr", "set"),
    Case("set_wrong_type", (*TRAIN, "--set", "optim.iters=abc"), "optim.iters", "set"),
    Case("resume_mismatching_config", (*RESUME, "{data}/run", "--set", "optim.lr=0.5"), "optim.lr", "resume"),
    Case("resume_no_run", (*RESUME, "{tmp}/nothing"), "--resume", "resume"),
    Case("resume_without_out", ("pinn", "train", "{data}/tiny.toml", "--resume"), "--resume", "resume"),
    Case("resume_truncated_checkpoint", (*RESUME, "{data}/trunc_ckpt"), "ckpt_4.pt", "checkpoint"),
    Case("resume_foreign_checkpoint", (*RESUME, "{data}/foreign_ckpt"), "ckpt_4.pt", "checkpoint"),
    Case("from_truncated_model", ("pinn", "transfer", "--from", "{data}/trunc_model", "--config", "{data}/tiny.toml",
                                  "--out", "{tmp}/t"), "trunc_model/model.pt", "model"),
    Case("from_foreign_model", ("pinn", "transfer", "--from", "{data}/foreign_model", "--config",
                                "{data}/tiny.toml", "--out", "{tmp}/t"), "score train", "model"),
    Case("from_no_model", ("pinn", "transfer", "--from", "{data}/no_model", "--config", "{data}/tiny.toml",
                           "--out", "{tmp}/t"), "has no model.pt", "model"),
    Case("from_missing_folder", ("pinn", "family", "--from", "{data}/nowhere", "--config", "{data}/tiny.toml",
                                 "--out", "{tmp}/f"), "nowhere does not exist", "model"),
    Case("from_a_family_run", ("pinn", "transfer", "--from", "{data}/family_run", "--config", "{data}/tiny.toml",
                               "--out", "{tmp}/t"), "pinn family", "model"),
    Case("transfer_unknown_method", (*TRANSFER, "--set", "transfer.method=lora"), "transfer.method", "config"),
    Case("transfer_threads_zero", (*TRANSFER, "--threads", "0"), "--threads", "threads"),
    Case("family_resampled_points", ("pinn", "family", "--from", "{data}/run", "--config", "{data}/resample.toml",
                                     "--out", "{tmp}/f"), "sampling.resample", "config"),
    Case("family_hard_constraints", ("pinn", "family", "--from", "{data}/run", "--config", "{data}/hard.toml",
                                     "--out", "{tmp}/f"), "loss.hard", "config"),
    Case("family_no_members", (*FAMILY, "--set", "transfer.targets=[]"), "transfer.targets", "config"),
    Case("family_device_bogus", (*FAMILY, "--device", "cuda:99" if torch.cuda.is_available() else "cuda"),
         "--device", "device"),
]


def _fingerprint(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and os.access(p, os.R_OK)}


def _skip_if_root_bypasses(case, data):
    if case.id == "unreadable_toml" and os.access(data / "unreadable.toml", os.R_OK):
        pytest.skip("running as root: a chmod 000 file is still readable")
    if case.id == "out_unwritable" and os.access(data / "readonly", os.W_OK):
        pytest.skip("running as root: a read-only folder is still writable")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, data, tmp_path):
    _skip_if_root_bypasses(case, data)
    before = _fingerprint(data)
    check_case(case, tmp_path, data)
    assert _fingerprint(data) == before, f"{case.id}: changed a prepared file"


def test_the_corpus_covers_every_class():
    assert len(CASES) >= 20
    assert {"config", "size", "device", "threads", "out", "resume", "checkpoint", "model", "set",
            "budget"} <= {c.cls for c in CASES}


def test_the_prepared_runs_are_good(data, tmp_path):
    """The damaged copies are the only thing wrong: the intact run resumes and transfers."""
    from sciml.pinn import PINN

    assert PINN.load(data / "run").config.problem.d == 2
    shutil.copytree(data / "run", tmp_path / "run")
    code, out, err = run_cli(["pinn", "train", str(data / "tiny.toml"), "--out", str(tmp_path / "run"), "--resume"])
    assert code == 0, err
    code, out, err = run_cli(["pinn", "transfer", "--from", str(data / "run"), "--config", str(data / "tiny.toml"),
                              "--out", str(tmp_path / "t")])
    assert code == 0 and "test relative L2" in out, err
