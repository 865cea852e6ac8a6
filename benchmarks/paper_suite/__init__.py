"""The paper's claims at CPU scale on Fashion-MNIST (run through ``benchmarks/paper.py``)."""
