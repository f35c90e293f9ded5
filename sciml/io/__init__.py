"""Data files: HDF5/.npy schemas with validation and errors that name the problem and the fix."""

from .data import DataError, load_array, require_dataset

__all__ = ["DataError", "load_array", "require_dataset"]
