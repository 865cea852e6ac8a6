"""Model families. Each module ends in its registered builders."""
from . import resnet  # noqa: F401
from . import mobilenet_v1, mobilenet_v2, shufflenet_v2  # noqa: F401
