"""Reusable ML layer: sequence data contract, torch models, Petastorm I/O, distributed training,
metrics and the MLflow registry rules (issue 6: creator-quality sequence model; later graph/MMoE).

Everything from Parquet onwards lives here; the Spark side that builds the training rows is the
caller's. Submodules import torch/mlflow/petastorm themselves, so importing ``libs.ml`` stays cheap.
"""
