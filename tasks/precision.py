"""Numeric precision of training: the trainer's bf16/fp16/tf32 flags for a requested precision.

Example::

    precision_flags("auto", "cuda")   # {"bf16": False, "fp16": False, "tf32": True} on an H100
"""

from __future__ import annotations

from tasks.io import InvalidInputError


def precision_flags(precision: str, device: str) -> dict[str, bool]:
    """bf16/fp16/tf32 trainer flags for the requested precision on this hardware.

    ``auto`` turns tf32 on where the GPU has it (Ampere or newer) and leaves bf16 off: on an H200,
    bf16 autocast trained MiniLM (22M) and BERT-base (110M) at batch 32 about 2x slower than tf32
    (see docs/benchmarks.md), saving a third of the memory. Ask for ``bf16`` when memory, not time,
    is what limits the batch. Asking for bf16/fp16/tf32 where the hardware cannot do it is an
    input error.
    """
    import torch

    cuda = device == "cuda"
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    tf32_ok = cuda and torch.cuda.get_device_capability(0)[0] >= 8
    if precision == "auto":
        return {"bf16": False, "fp16": False, "tf32": tf32_ok}
    if precision == "bf16":
        if not bf16_ok:
            raise InvalidInputError("precision=bf16 needs a CUDA GPU with bf16 support; use auto")
        return {"bf16": True, "fp16": False, "tf32": tf32_ok}
    if precision == "tf32":
        if not tf32_ok:
            raise InvalidInputError("precision=tf32 needs an Ampere or newer CUDA GPU; use auto")
        return {"bf16": False, "fp16": False, "tf32": True}
    if precision == "fp16":
        if not cuda:
            raise InvalidInputError("precision=fp16 needs a CUDA GPU; use auto or fp32")
        return {"bf16": False, "fp16": True, "tf32": tf32_ok}
    return {"bf16": False, "fp16": False, "tf32": False}
