"""Experiments and timings (not installed with the library); the tests import their analysis code from here."""
