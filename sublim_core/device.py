"""Resolution of the `device` parameter to a torch device."""

from __future__ import annotations

import logging
import re

import torch

logger = logging.getLogger(__name__)

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(device: str) -> torch.device:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a torch device.

    "auto" picks the first CUDA device when one is available and the CPU otherwise, and
    logs the choice. Raises ValueError for any other name and RuntimeError when a CUDA
    device is requested on a machine without one.
    """
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(
            f"device={device!r} is invalid; allowed values are 'auto', 'cpu', 'cuda' "
            "and 'cuda:N' for a device index N"
        )
    if device == "auto":
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        logger.info("device='auto' resolved to %s", chosen)
        return chosen
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was requested but torch finds no CUDA device; "
                "use device='cpu' or device='auto'"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} is invalid; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    return torch.device(device)
