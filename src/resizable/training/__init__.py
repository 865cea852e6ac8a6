"""Training: the options (``options``), one step of Algorithm 1 and the other recipes (``step``), the loss
inside an epoch (``steplog``), the memory format (``memory_format``), run folders (``run_folder``) and the
loop (``trainer``)."""
