"""resizable: Resizable Neural Networks in PyTorch.

One convolutional network whose feature maps are resized at every stage by a chosen scaling
factor; trained once (fair sampling, scale-aware batch norm), run at any of its k^N scaling
configurations.
"""
from .evaluation.calibrate import calibrate_bn
from .deploy.export import export_to_file, load_static
from .deploy.static import export
from .macs import FlopsReport, MacsReport, count_flops, count_macs, count_params
from .deploy.fold import fold_bn
from .layers import FixedResize2d, ResizableStage, Resize2d, ScaleBatchNorm2d
from .net import DEFAULT_FACTORS, ResizableNet
from .registry import create_model, from_torchvision, list_models, register_model
from . import models  # noqa: E402,F401  (registers every model family and its torchvision converter)
from .configs import format_config, parse_config
from .evaluation.walker import calibrate_configs, evaluate_configs, forward_all
from .sampling import ConfigSampler
from .checkpoint import load_checkpoint, load_model, save_checkpoint, write_bank
from .trained_run import TrainedRun, natural_input_size
from .utils.fileio import atomic_path, atomic_write_text

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FACTORS",
    "FixedResize2d",
    "FlopsReport",
    "MacsReport",
    "ResizableNet",
    "ResizableStage",
    "Resize2d",
    "ScaleBatchNorm2d",
    "calibrate_bn",
    "count_flops",
    "count_macs",
    "count_params",
    "calibrate_configs",
    "evaluate_configs",
    "format_config",
    "forward_all",
    "parse_config",
    "create_model",
    "export",
    "export_to_file",
    "fold_bn",
    "from_torchvision",
    "list_models",
    "load_static",
    "register_model",
    "ConfigSampler",
    "TrainedRun",
    "natural_input_size",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "write_bank",
    "atomic_path",
    "atomic_write_text",
]
