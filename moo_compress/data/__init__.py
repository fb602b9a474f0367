"""Datasets as uint8 NHWC arrays: loading, on-disk caching and stratified subsets."""

from moo_compress.data.datasets import (
    DATASETS,
    SPLITS,
    ArrayDataset,
    DatasetInfo,
    dataset_classes,
    dataset_info,
    dataset_labels,
    list_datasets,
    load_dataset,
    load_image_folder,
    resolve_data_root,
)
from moo_compress.data.subsets import TEST_SPLITS, balanced_order, split_indices, stratified_indices

__all__ = [
    "DATASETS",
    "SPLITS",
    "ArrayDataset",
    "DatasetInfo",
    "dataset_classes",
    "dataset_info",
    "dataset_labels",
    "list_datasets",
    "load_dataset",
    "load_image_folder",
    "resolve_data_root",
    "balanced_order",
    "stratified_indices",
    "split_indices",
    "TEST_SPLITS",
]
