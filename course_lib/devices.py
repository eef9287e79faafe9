"""Where and how reproducibly to train: the device (CUDA, then Apple's MPS, then the CPU; ``$COURSE_DEVICE``
forces one), seeds, and the shuffle of each epoch.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["DEVICE_ENV", "mps_available", "available", "pick_device", "named_device", "device_argument",
           "seed_everything", "epoch_generator", "move_optimizer_state"]

DEVICE_ENV = "COURSE_DEVICE"


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index is None or device.index < torch.cuda.device_count())
    if device.type == "mps":
        return mps_available()
    return False


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``preferred``, else ``$COURSE_DEVICE``, else CUDA, then MPS, then the CPU.

    A device that is asked for (by argument or environment variable) but not
    available raises ``RuntimeError`` instead of silently falling back, so a
    "GPU" run never quietly happens on the CPU.
    """
    if preferred is not None:
        return named_device(preferred, "preferred")
    choice = os.environ.get(DEVICE_ENV, "").strip()
    if choice:
        return named_device(choice, f"${DEVICE_ENV}")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def named_device(choice, source: str) -> torch.device:
    """The device named by ``choice`` (a string or ``torch.device``), checked to exist on this machine.

    ``source`` says where the name came from (``'device'``, ``'$COURSE_DEVICE'``…) so the error can point at it.
    """
    try:
        device = torch.device(choice)
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(f"{source}={str(choice)!r} is not a device name (try cpu, cuda, cuda:0 or mps)") from error
    if not available(device):
        raise RuntimeError(f"{source}={str(choice)!r} asks for {device}, which is not available on this machine")
    return device


def device_argument(device) -> torch.device:
    """``device=`` of fit, evaluate and lr_range_test: :func:`pick_device`'s choice when None, else checked."""
    return pick_device() if device is None else named_device(device, "device")


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU). Returns ``seed``.

    After ``seed_everything(s)`` the same code draws the same numbers: the same
    initial weights, the same shuffles (``fit`` draws its shuffle seed from
    torch's generator when none is given).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))  # seeds CUDA and MPS generators too
    return int(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator that shuffles epoch ``epoch`` (0-based) of a run with shuffle seed ``seed``.

    It depends only on (seed, epoch), so a resumed run shuffles exactly as an
    uninterrupted one, and the CPU and a GPU see the same batches. :func:`course_lib.training.fit` and
    :func:`course_lib.range_test.lr_range_test` draw their orders from it:
    ``torch.randperm(n, generator=epoch_generator(seed, epoch))``.
    """
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))


def move_optimizer_state(optimizer, device) -> None:
    """Optimizer state tensors follow the parameters (except torch's CPU ``step`` counters)."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if key != "step" and isinstance(value, torch.Tensor) and value.device != device:
                state[key] = value.to(device)
