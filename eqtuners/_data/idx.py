"""The IDX format of MNIST and Fashion-MNIST (`train-images-idx3-ubyte.gz`, ...).

An IDX file is a big-endian header, two zero bytes, a type code (0x08 for unsigned
bytes), the number of dimensions, one 4-byte size per dimension, then the data in C
order. The files are usually gzipped; both forms are read.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


_AGAIN = "the file is damaged or incomplete: download it again."


def read_idx(path: str | Path) -> np.ndarray:
    """Reads one IDX file (gzipped if its name ends in `.gz`) into a NumPy array.

    **Raises:** `ValueError` naming the file, and saying to download it again, when
    its gzip stream is truncated or corrupt, the header is not IDX, or the data do
    not match the sizes the header announces. `FileNotFoundError` when it is
    missing.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            raw = file.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"Cannot decompress {path} ({error}); {_AGAIN}") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number); {_AGAIN}")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its IDX header is incomplete; {_AGAIN}")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path} should hold {expected} bytes of data for shape {shape}, but "
            f"holds {len(raw) - header}; {_AGAIN}"
        )
    array = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))
