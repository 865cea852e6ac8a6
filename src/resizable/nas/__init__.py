"""Resizable-NAS: lookup-table files (``table_file``), building, searching and the Pareto front
(``lookup``), latency tables (``latency``, ``runtimes``) and fine-tuning the chosen sub-network
(``finetune``)."""
