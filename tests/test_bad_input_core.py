"""Malformed input to the commands of the core (`sciml demo`, argument parsing): one line, exit 2,
nothing left behind. The wings' commands have their own files, tests/test_bad_input_<wing>.py."""

import pytest
import torch

from badinput import Case, check_case


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("core_data")
    (d / "binary.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (d / "latin1.toml").write_bytes("[autodiff]\nname = 'caf\xe9'\n".encode("latin-1"))
    (d / "nul.toml").write_bytes(b"[autodiff]\x00\n")
    (d / "syntax.toml").write_text("[autodiff\ndim = 3\n")
    (d / "section.toml").write_text("[autodif]\ndim = 3\n")
    (d / "key.toml").write_text("[autodiff]\nwidht = 3\n")
    (d / "range.toml").write_text("[autodiff]\ndim = 0\n")
    (d / "type.toml").write_text("[autodiff]\ndim = 'ten'\n")
    (d / "folder.toml").mkdir()
    return d


CASES = [
    Case("config-missing", ("demo", "--only", "autodiff", "--config", "{data}/none.toml"), "does not exist", "config"),
    Case("config-binary", ("demo", "--only", "autodiff", "--config", "{data}/binary.toml"), "UTF-8", "config"),
    Case("config-latin1", ("demo", "--only", "autodiff", "--config", "{data}/latin1.toml"), "UTF-8", "config"),
    Case("config-nul", ("demo", "--only", "autodiff", "--config", "{data}/nul.toml"), "binary", "config"),
    Case("config-syntax", ("demo", "--only", "autodiff", "--config", "{data}/syntax.toml"), "not valid TOML", "config"),
    Case("config-section", ("demo", "--only", "autodiff", "--config", "{data}/section.toml"), "autodif", "config"),
    Case("config-key", ("demo", "--only", "autodiff", "--config", "{data}/key.toml"), "autodiff.widht", "config"),
    Case("config-range", ("demo", "--only", "autodiff", "--config", "{data}/range.toml"), ">= 1", "config"),
    Case("config-type", ("demo", "--only", "autodiff", "--config", "{data}/type.toml"), "autodiff.dim", "config"),
    Case("config-folder", ("demo", "--only", "autodiff", "--config", "{data}/folder.toml"), "not a file", "config"),
    Case("device-bogus", ("demo", "--only", "autodiff", "--device", "bogus"), "--device bogus", "device"),
    Case("device-tpu", ("demo", "--only", "autodiff", "--device", "tpu"), "--device tpu", "device"),
    Case("threads-negative", ("demo", "--only", "autodiff", "--threads", "-1"), "--threads", "threads"),
    Case("threads-zero", ("demo", "--only", "autodiff", "--threads", "0"), "--threads", "threads"),
    Case("threads-word", ("demo", "--only", "autodiff", "--threads", "two"), "--threads", "threads"),
    Case("unknown-command", ("simulat",), "invalid choice", "usage"),
    Case("unknown-flag", ("info", "--verbose"), "unrecognized", "usage"),
]
if not torch.cuda.is_available():
    CASES.append(Case("device-cuda-absent", ("demo", "--only", "autodiff", "--device", "cuda"), "no CUDA", "device"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, tmp_path, data):
    check_case(case, tmp_path, data)
