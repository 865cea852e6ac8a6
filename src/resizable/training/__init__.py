"""Training: the options (``options``), one step of Algorithm 1 and the other recipes (``step``), the loss
inside an epoch (``steplog``), its TensorBoard scalars (``tensorboard``), the memory format
(``memory_format``), run folders (``run_folder``) and the loop (``trainer``)."""
from .memory_format import pick_memory_format
from .options import TrainOptions
from .step import train_step
from .steplog import STEPS_FILE, loss_climbs, read_steps
from .schedule import build_optimizer
from .trainer import train

__all__ = ["TrainOptions", "train", "train_step", "build_optimizer", "STEPS_FILE", "read_steps", "loss_climbs",
           "pick_memory_format"]
