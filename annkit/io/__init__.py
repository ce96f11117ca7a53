"""Embedding-file readers and writers, dataset loading and validation.

Formats (chosen by extension): ``.npy``, TEXMEX ``.fvecs``/``.bvecs``/``.ivecs``,
big-ann-benchmarks ``.fbin``/``.u8bin``/``.i8bin``/``.ibin`` and ann-benchmarks HDF5
(``.hdf5``/``.h5``); labels as big-ann-benchmarks ``.spmat`` files or HDF5 ``train_labels`` /
``test_labels`` groups. Every problem with a file is a :class:`annkit.errors.DatasetError`
(or :class:`~annkit.errors.InputError`) whose one-line message names the file.
"""

from annkit.io.bundled import BUNDLED_DATASETS, bundled_names, resolve_dataset_path
from annkit.io.dataset import load_dataset, load_dataset_files
from annkit.io.dispatch import (
    ID_SUFFIXES,
    VECTOR_SUFFIXES,
    WRITE_SUFFIXES,
    describe_file,
    read_ids,
    read_vectors,
    read_weights,
    write_vectors,
)
from annkit.io.hdf5 import write_dataset_hdf5, write_label_group, write_neighbors_hdf5
from annkit.io.labels import (
    read_dataset_labels,
    read_label_group,
    read_labels_file,
    read_spmat,
    write_spmat,
)
from annkit.io.validate import validate_vectors

__all__ = [
    "BUNDLED_DATASETS",
    "ID_SUFFIXES",
    "VECTOR_SUFFIXES",
    "WRITE_SUFFIXES",
    "bundled_names",
    "describe_file",
    "load_dataset",
    "load_dataset_files",
    "read_dataset_labels",
    "read_ids",
    "read_label_group",
    "read_labels_file",
    "read_spmat",
    "read_vectors",
    "read_weights",
    "resolve_dataset_path",
    "validate_vectors",
    "write_dataset_hdf5",
    "write_label_group",
    "write_neighbors_hdf5",
    "write_spmat",
    "write_vectors",
]
