"""Choosing the Warp device."""

from __future__ import annotations

import warp as wp

from warpsdf.errors import DeviceError


def resolve_device(name: str | None = "auto") -> str:
    """``auto`` -> the first CUDA device if there is one, else ``cpu``;
    ``cpu``, ``cuda`` and ``cuda:N`` are checked against what Warp finds."""
    name = (name or "auto").strip().lower()
    count = wp.get_cuda_device_count()
    if name == "auto":
        return "cuda:0" if count > 0 else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        index = 0
        if name != "cuda":
            try:
                index = int(name.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"--device {name}: expected cpu, cuda or cuda:N") from None
        if count == 0:
            raise DeviceError(
                f"--device {name}: no CUDA device found (Warp sees none); use --device cpu"
            )
        if not 0 <= index < count:
            raise DeviceError(
                f"--device {name}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
        return f"cuda:{index}"
    raise DeviceError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
