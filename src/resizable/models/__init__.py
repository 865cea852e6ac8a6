"""Model families. Each module ends in its registered builders."""
from . import resnet  # noqa: F401
