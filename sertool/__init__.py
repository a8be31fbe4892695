"""sertool: a feature store and lightweight experiment tracker for multi-encoder speech emotion recognition.

Heavy libraries (torch, transformers, mlflow, zarr) are imported inside the functions that need them,
so that importing sertool, and `sertool --help`, stay instant.
"""

__version__ = "0.1.0"
