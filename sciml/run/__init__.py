"""Run infrastructure every method reuses: configs, run directories, checkpoints, seeds, devices."""

from .config import ConfigError, config_to_dict, dump_toml, load_config, param, parse_overrides, read_toml, replace_config
from .io import atomic_h5, atomic_path, atomic_torch_save, atomic_write_bytes, atomic_write_text
from .errors import CheckpointError, UsageError, UserError
from .loop import rng_state, set_rng_state, train_loop
from .method import Method, MethodBase, check_run_config, fit, open_run, set_threads
from .seeds import derive_seed, derived_generator
from .result import DivergenceError, Result, Status, check_finite
from .resources import available_memory, format_bytes, require_memory
from .rundir import RunDir, read_torch_file
from .runtime import DeviceError, get_logger, progress, resolve_device, seed_everything, setup_logging, tune_allocator

__all__ = [
    "ConfigError", "config_to_dict", "dump_toml", "load_config", "param", "parse_overrides", "read_toml", "replace_config",
    "atomic_h5", "atomic_path", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text",
    "CheckpointError", "UsageError", "UserError", "rng_state", "set_rng_state", "train_loop",
    "Method", "MethodBase", "check_run_config", "fit", "open_run", "set_threads", "derive_seed", "derived_generator",
    "DivergenceError", "Result", "Status", "check_finite",
    "available_memory", "format_bytes", "require_memory", "RunDir", "read_torch_file", "DeviceError", "get_logger", "progress", "resolve_device", "seed_everything", "setup_logging",
    "tune_allocator",
]
