"""Evaluation: many configurations at once over the configuration tree (``walker``), one configuration's
BN statistics (``calibrate``), and ``resizable eval`` (``checkpoint_eval``)."""
