"""The paper's claims at CPU scale on Fashion-MNIST (run through ``experiments/paper/run.py``)."""
