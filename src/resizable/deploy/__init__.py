"""Deployment: a configuration as a static network (``static``), BN folding (``fold``), files with their
sidecar (``export``), and conversion of a torchvision model's weights file or a run (``convert``)."""
from .convert import ConvertOptions, convert_checkpoint

__all__ = ["ConvertOptions", "convert_checkpoint"]
