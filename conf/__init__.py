"""Per-environment settings (`<env>.yaml`, identical keys) and the pipeline definition.

Shipped as package data so jobs running from the wheel on a cluster read the same files.
"""
