"""Deployment: a configuration as a static network (``static``), BN folding (``fold``), files with their
sidecar (``export``), and conversion from torchvision or a run (``torchvision``, ``convert``)."""
from .convert import convert_checkpoint

__all__ = ["convert_checkpoint"]
