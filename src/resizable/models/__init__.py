"""Model families. Each module ends in its registered builders."""
from . import resnet  # noqa: F401
from . import mobilenet_v1; from . import mobilenet_v2; from . import shufflenet_v2  # noqa: F401
