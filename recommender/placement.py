"""Where the model runs and on how many threads: decided once, from each runtime asked once.

ONNX Runtime is asked for its execution providers; PyTorch is asked about CUDA only on a machine
with an NVIDIA driver (elsewhere it is not imported at all); FAISS is asked for GPUs only when
the model is on one.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recommender.errors import ConfigurationError, ModelLoadError

log = logging.getLogger(__name__)

BackendName = Literal["torch", "onnx"]
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class Placement:
    """A model's device (``cpu``, ``cuda`` or ``cuda:N``), its intra-op threads, and whether
    the track index goes on the GPU too."""

    device: str
    threads: int
    faiss_gpu: bool = False

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")


def check_device(device: str) -> str:
    """``device`` if it names one this project can use, else ConfigurationError."""
    if not _DEVICE.fullmatch(device):
        raise ConfigurationError(f"device must be cpu, cuda or cuda:N; got {device!r}")
    return device


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def nvidia_driver() -> bool:
    """Whether an NVIDIA driver is installed (without loading any CUDA library)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


@functools.cache
def onnx_cuda() -> bool:
    """Whether ONNX Runtime here has its CUDA execution provider."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@functools.cache
def torch_cuda() -> bool:
    """Whether PyTorch sees a CUDA device (False without a driver or without PyTorch)."""
    if not nvidia_driver():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_available(backend: BackendName) -> bool:
    return torch_cuda() if backend == "torch" else onnx_cuda()


@functools.cache
def faiss_gpus() -> int:
    import faiss

    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


_logged: set[tuple[Placement, str]] = set()


def decide(
    device: str | None = None, threads: int | None = None, *, backend: BackendName
) -> Placement:
    """The placement of a model run by ``backend``: ``device`` as given (refused where that
    runtime has no CUDA), else CUDA when the runtime has it, else the CPU; ``threads`` as
    given, else every available core. Logged once per process and placement."""
    if device is None:
        device = "cuda" if cuda_available(backend) else "cpu"
    check_device(device)
    if device.startswith("cuda") and not cuda_available(backend):
        reason = (
            "CUDA is not available here"
            if backend == "torch"
            else "onnxruntime here has no CUDA provider"
        )
        raise ModelLoadError(f"device {device!r} requested but {reason}")
    placement = Placement(
        device=device,
        threads=threads if threads is not None else available_cores(),
        faiss_gpu=device.startswith("cuda") and faiss_gpus() > 0,
    )
    if (placement, backend) not in _logged:
        _logged.add((placement, backend))
        log.info(
            "placement: %s backend on %s, %d thread(s), FAISS on %s",
            backend,
            placement.device,
            placement.threads,
            "GPU" if placement.faiss_gpu else "CPU",
        )
    return placement
