"""Read a PyTorch state dict (`torch.save` of name -> tensor) into numpy arrays, without torch.

The runtime must not import torch, yet the widely shared VGG-Face weights are a `.pth` state dict.
Both of torch's formats are read: the zip archive (torch >= 1.6) and the older sequence of pickles.
Unpickling only ever builds dicts, lists, numbers and arrays: any other global in the file is refused,
so a malicious `.pth` cannot run code here.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,  # numpy has no bfloat16: refused with a message below
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class StateDictError(ValueError):
    """A file that is not a readable PyTorch state dict."""


class _StorageType:
    def __init__(self, name: str):
        if _DTYPES.get(name) is None:
            raise StateDictError(f"tensors of type {name} are not supported; save the weights as float32")
        self.dtype = np.dtype(_DTYPES[name])


class _TensorRef:
    """A tensor whose storage bytes may come later in the file (legacy format): built at the end."""

    def __init__(self, storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        # a crafted size or stride must not read past the storage
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True) if n > 0)
        if self.offset < 0 or any(s < 0 for s in self.stride) or (all(self.size) and last >= len(self.storage)):
            raise StateDictError("a tensor's size and stride reach outside its storage: the file is damaged")
        item = self.storage.itemsize
        strides = [s * item for s in self.stride]
        view = np.lib.stride_tricks.as_strided(self.storage[self.offset :], shape=self.size, strides=strides)
        return np.array(view)  # own, contiguous memory


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any):
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data: _TensorRef, *_: Any) -> _TensorRef:
    return data


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.array()
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: BinaryIO, load_storage: Any):
        super().__init__(fh, encoding="latin1")
        self.load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        raise StateDictError(
            f"refusing to load {module}.{name}: the file holds more than a state dict of tensors "
            "(save `model.state_dict()` instead)"
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise StateDictError(f"unsupported persistent object {kind!r}")
        storage_type, key, _location, numel = pid[1:5]
        array = self.load_storage(str(key), storage_type.dtype, int(numel))
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # legacy views into a larger storage: (view_key, offset, size)
            _, offset, size = view
            array = array[offset : offset + size]
        return array


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if zipfile.is_zipfile(path):
        obj = _read_zip(path)
    else:
        with open(path, "rb") as fh:
            obj = _read_legacy(fh)
    obj = _materialise(obj)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise StateDictError(f"{path} does not hold a state dict (name -> tensor)")
    return dict(obj)


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        pkl = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
        if pkl is None:
            raise StateDictError(f"{path} is a zip file without data.pkl: not a torch.save file")
        prefix = pkl[: -len("data.pkl")]
        big_endian = f"{prefix}byteorder" in zf.namelist() and zf.read(f"{prefix}byteorder") == b"big"

        def load_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
            data = np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype=dtype.newbyteorder(">" if big_endian else "<"))
            return data[:numel].astype(dtype)

        return _Unpickler(io.BytesIO(zf.read(pkl)), load_storage).load()


def _plain(fh: BinaryIO) -> Any:
    """One of the legacy format's header pickles: plain data only, never a global."""
    return _Unpickler(fh, None).load()


def _read_legacy(fh: BinaryIO) -> Any:
    try:
        magic = _plain(fh)
    except Exception as err:
        raise StateDictError(f"not a torch.save file ({err})") from None
    if magic != LEGACY_MAGIC:
        raise StateDictError("not a torch.save file (no zip archive and no legacy magic number)")
    _plain(fh)  # protocol version
    sys_info = _plain(fh)
    if not isinstance(sys_info, dict):
        raise StateDictError("not a torch.save file (its header is not a dict)")
    order = "<" if sys_info.get("little_endian", True) else ">"
    pending: dict[str, tuple[np.ndarray, np.dtype, int]] = {}

    def load_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        # the bytes follow the pickles: hand out a buffer now and fill it once they are reached
        if key not in pending:
            pending[key] = (np.empty(numel, dtype), dtype, numel)
        return pending[key][0]

    obj = _Unpickler(fh, load_storage).load()
    for key in _plain(fh):
        buffer, dtype, _ = pending[str(key)]
        (count,) = struct.unpack(f"{order}q", fh.read(8))
        raw = fh.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise StateDictError("the file ends before its tensors do (truncated download?)")
        buffer[:count] = np.frombuffer(raw, dtype=dtype.newbyteorder(order))
    return obj
