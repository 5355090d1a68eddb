"""Model weights as ``.npz`` files: named ``arr_0..arr_n`` float arrays, never pickled."""

from __future__ import annotations

import io

import numpy as np
from flwr.app import ArrayRecord


def arrays_to_npz(arrays: ArrayRecord) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"arr_{i}": a for i, a in enumerate(arrays.to_numpy_ndarrays())})
    return buffer.getvalue()


def npz_to_arrays(data: bytes) -> ArrayRecord:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return ArrayRecord([npz[f"arr_{i}"] for i in range(len(npz.files))])
