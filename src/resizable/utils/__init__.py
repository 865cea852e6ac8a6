"""What every room leans on, and none of it about networks: option dataclasses (``options``: type and bounds
declared once; defaults, YAML, flags), atomic writes and user text files (``fileio``), progress bars
(``console``), optional packages (``optional``), torchrun and devices (``distributed``)."""
