"""Resizable-NAS: lookup-table files (``table_file``), building, searching and the Pareto front
(``lookup``), latency tables (``latency``, ``runtimes``) and fine-tuning the chosen sub-network
(``finetune``)."""
from .latency import device_description, time_module
from .lookup import TableOptions, table_checkpoint, table_from_checkpoint
from .runtimes import load_in_runtime, runtime_description
from .table_file import LATENCY_MAGIC, read_table

__all__ = ["TableOptions", "table_checkpoint", "table_from_checkpoint", "read_table", "LATENCY_MAGIC", "time_module",
           "device_description", "load_in_runtime", "runtime_description"]
