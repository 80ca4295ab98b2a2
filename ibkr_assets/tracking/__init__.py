"""Experiment tracking: one MLflow run per partition and execution, shared by the asset steps.

Plain Python (no Dagster) so it can be used and tested on its own; the Dagster side is
``ibkr_assets.resources.mlflow.MlflowResource``.
"""
