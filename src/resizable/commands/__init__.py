"""Sub-commands of the ``resizable`` CLI (see :mod:`resizable.cli`): each module holds its command's options
dataclass, its arguments and its run; where no application room does the work, the driver too
(``evaluate``: ``resizable eval``; ``demo``)."""
from .demo import DemoOptions
from .evaluate import EvalOptions, evaluate_checkpoint

__all__ = ["DemoOptions", "EvalOptions", "evaluate_checkpoint"]
