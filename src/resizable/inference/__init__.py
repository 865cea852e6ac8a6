"""Inference on image files: ``resizable predict``.

A trained run (at one configuration, the lookup table's best under a MACs budget, or routed per
image by Resizable-Adapt) or an exported network (TorchScript, ONNX, state_dict) classifies image
files, each prepared exactly as ``resizable eval`` prepares the run's own images.

- :mod:`~resizable.inference.images`: which files the arguments name; :class:`Preprocessing`.
- :mod:`~resizable.inference.network`, :mod:`~resizable.inference.run_network`,
  :mod:`~resizable.inference.exported`: the network, from a run or from an export.
- :mod:`~resizable.inference.output`: text, CSV and JSON records.
- :mod:`~resizable.inference.predict`: :class:`PredictOptions` and :func:`predict_checkpoint`.
"""
from .images import Preprocessing, image_paths
from .network import Network, NetworkChoice
from .output import OUTPUT_FORMATS, Prediction
from .predict import PredictOptions, PredictSummary, open_network, predict_checkpoint, predictions

__all__ = ["OUTPUT_FORMATS", "Network", "NetworkChoice", "PredictOptions", "PredictSummary", "Prediction",
           "Preprocessing", "image_paths", "open_network", "predict_checkpoint", "predictions"]
