"""Evaluation: many configurations at once over the configuration tree (``walker``), one configuration's
BN statistics (``calibrate``), the statistics bank measured on the tree (``bank``)."""
from .bank import BANK_BATCH_SIZE, BANK_BATCHES, build_bank
from .walker import accuracy, evaluate_naive

__all__ = ["build_bank", "BANK_BATCHES", "BANK_BATCH_SIZE", "accuracy",
           "evaluate_naive"]
