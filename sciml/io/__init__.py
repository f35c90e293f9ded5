"""Data files: HDF5/.npy schemas with validation and errors that name the problem and the fix."""

from .data import DataError, available_memory, dataset_node, format_bytes, load_array, require_dataset

__all__ = ["DataError", "available_memory", "dataset_node", "format_bytes", "load_array", "require_dataset"]
