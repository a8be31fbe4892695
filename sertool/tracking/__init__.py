"""Everything MLflow: the only package that imports mlflow."""
