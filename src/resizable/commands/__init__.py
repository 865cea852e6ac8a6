"""Sub-commands of the ``resizable`` CLI (see :mod:`resizable.cli`)."""
