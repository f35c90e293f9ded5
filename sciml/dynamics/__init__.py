"""Dynamical systems as data, accurate integrators, trajectory generation and the HDF5 trajectory schema.

See ``docs/conservation.md`` (the schema and ``sciml simulate``) and :mod:`problems.systems` (the catalogue).
"""

from .integrators import DOP853, INTEGRATORS, IntegrationError, Integrator, Leapfrog, Yoshida4, default_integrator
from .lyapunov import LyapunovResult, lyapunov_exponent
from .system import DynamicalSystem, InitialRegion, RegionError
from .trajectories import (MIN_TIMES, SCHEMA_VERSION, Trajectories, energy_drift,
                           load_trajectories, save_trajectories, simulate)

__all__ = [
    "DOP853", "INTEGRATORS", "IntegrationError", "Integrator", "Leapfrog", "Yoshida4", "default_integrator",
    "LyapunovResult", "lyapunov_exponent",
    "DynamicalSystem", "InitialRegion", "RegionError",
    "MIN_TIMES", "SCHEMA_VERSION", "Trajectories", "energy_drift", "load_trajectories",
    "save_trajectories", "simulate",
]
