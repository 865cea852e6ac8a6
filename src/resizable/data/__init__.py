"""Data: the built-in datasets and their loaders (``datasets``), their file readers (``readers``),
image folders (``imagefolder``) and the held-out val split a run records (``splits``)."""
from .datasets import (DATASETS, NO_VAL_SPLIT, SPLITS, DatasetInfo, TensorBatchLoader, TensorImageDataset, dataset_info,
                      default_data_root, load_dataset, make_loader, read_idx)
from .readers import FASHION_FILES, load_fashion_mnist
from .splits import ValSplit, load_split

__all__ = ["DATASETS", "NO_VAL_SPLIT", "SPLITS", "DatasetInfo", "TensorBatchLoader", "TensorImageDataset",
           "dataset_info", "default_data_root", "load_dataset", "make_loader", "read_idx", "FASHION_FILES",
           "load_fashion_mnist", "ValSplit", "load_split"]
