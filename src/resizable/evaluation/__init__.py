"""Evaluation: many configurations at once over the configuration tree (``walker``), one configuration's
BN statistics (``calibrate``), and ``resizable eval`` (``checkpoint_eval``)."""
from .bank import BANK_BATCH_SIZE, BANK_BATCHES, build_bank
from .checkpoint_eval import EvalOptions, evaluate_checkpoint
from .walker import accuracy, evaluate_naive

__all__ = ["EvalOptions", "evaluate_checkpoint", "build_bank", "BANK_BATCHES", "BANK_BATCH_SIZE", "accuracy",
           "evaluate_naive"]
