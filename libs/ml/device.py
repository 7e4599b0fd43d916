"""Which accelerator a training or scoring process uses.

One function, so the same job runs unchanged on a laptop (CPU, or Apple's MPS), a CI runner and a
GPU node: code asks ``pick_device()`` and moves tensors there, never tests ``cuda`` itself. The
choice is logged because "why was this run 40x slower" is almost always "it fell back to CPU".
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(prefer: str = "auto") -> torch.device:
    """CUDA if available, else MPS if available, else CPU; ``prefer`` forces one (``auto``: best).

    A forced accelerator that is absent is an error, not a silent CPU fallback: a benchmark or a
    job asked for a GPU would otherwise report CPU numbers as GPU ones.
    Under TorchDistributor each rank sees only its own GPUs (CUDA_VISIBLE_DEVICES) and picks
    ``cuda:LOCAL_RANK`` itself; this function returns the process' default device.
    """
    if prefer not in _CHOICES:
        raise ValueError(f"device must be one of {', '.join(_CHOICES)}, got {prefer!r}")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if prefer == "cuda" and not cuda:
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    if prefer == "mps" and not mps:
        raise RuntimeError("device 'mps' requested but torch.backends.mps.is_available() is False")
    if prefer == "cpu":
        device = torch.device("cpu")
    elif prefer == "cuda" or (prefer == "auto" and cuda):
        device = torch.device("cuda")
    elif prefer == "mps" or (prefer == "auto" and mps):
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        log.info("torch device: cuda (%s, %d visible)", torch.cuda.get_device_name(0), torch.cuda.device_count())
    else:
        log.info("torch device: %s (cuda available: %s, mps available: %s)", device.type, cuda, mps)
    return device
