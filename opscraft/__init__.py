"""OpsCraft: run infrastructure automation scripts in isolated containers."""

__version__ = "0.1.0"
