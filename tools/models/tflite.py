"""A small reader for TensorFlow Lite flatbuffers: the parts of the schema a converter needs.

Only the tables and fields read here are decoded (tflite's schema.fbs: Model, OperatorCode, SubGraph,
Tensor, Buffer, Operator and the builtin options of the operators we convert), straight from the
flatbuffer layout, so conversion needs neither TensorFlow nor a flatbuffers package.

Flatbuffer layout: a table starts with an int32 offset back to its vtable; the vtable lists uint16
offsets of the table's fields (0: absent, the schema default applies). References to tables, vectors
and strings are uint32 offsets from where the reference is stored; a vector is a uint32 length and
its elements.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# BuiltinOperator codes (schema.fbs) of the operators the converters handle
BUILTIN = {
    0: "ADD",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    19: "RELU",
    21: "RELU6",
    22: "RESHAPE",
    34: "PAD",
    54: "PRELU",
}
# TensorType -> numpy dtype
DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
# fused_activation_function
ACTIVATIONS = {0: None, 1: "RELU", 3: "RELU6"}
PADDING = {0: "SAME", 1: "VALID"}


class _Table:
    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        size = struct.unpack_from("<H", buf, vtable)[0]
        self.slots = [struct.unpack_from("<H", buf, vtable + 4 + 2 * i)[0] for i in range((size - 4) // 2)]

    def _at(self, slot: int) -> int | None:
        off = self.slots[slot] if slot < len(self.slots) else 0
        return self.pos + off if off else None

    def scalar(self, slot: int, fmt: str, default: Any = 0) -> Any:
        at = self._at(slot)
        return default if at is None else struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _ref(self, slot: int) -> int | None:
        at = self._at(slot)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot: int) -> _Table | None:
        at = self._ref(slot)
        return None if at is None else _Table(self.buf, at)

    def string(self, slot: int) -> str:
        at = self._ref(slot)
        if at is None:
            return ""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4 : at + 4 + n].decode()

    def vector(self, slot: int, fmt: str) -> np.ndarray:
        at = self._ref(slot)
        if at is None:
            return np.zeros(0, np.dtype("<" + fmt))
        n = struct.unpack_from("<I", self.buf, at)[0]
        return np.frombuffer(self.buf, np.dtype("<" + fmt), n, at + 4)

    def tables(self, slot: int) -> list[_Table]:
        at = self._ref(slot)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        items = [at + 4 + 4 * i for i in range(n)]
        return [_Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]) for p in items]


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: type
    data: np.ndarray | None  # constant's values (in `shape`), None for activations


@dataclass
class Operator:
    op: str
    inputs: list[int]  # tensor indices, -1 for an optional input left out
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def _options(op: str, t: _Table | None) -> dict[str, Any]:
    """The builtin options of `op` (field order as in schema.fbs)."""
    if t is None:
        return {}
    if op == "CONV_2D":
        return {
            "padding": PADDING[t.scalar(0, "b")],
            "stride": (t.scalar(2, "i"), t.scalar(1, "i")),
            "activation": ACTIVATIONS[t.scalar(3, "b")],
            "dilation": (t.scalar(5, "i", 1), t.scalar(4, "i", 1)),
        }
    if op == "DEPTHWISE_CONV_2D":
        return {
            "padding": PADDING[t.scalar(0, "b")],
            "stride": (t.scalar(2, "i"), t.scalar(1, "i")),
            "multiplier": t.scalar(3, "i"),
            "activation": ACTIVATIONS[t.scalar(4, "b")],
            "dilation": (t.scalar(6, "i", 1), t.scalar(5, "i", 1)),
        }
    if op == "MAX_POOL_2D":
        return {
            "padding": PADDING[t.scalar(0, "b")],
            "stride": (t.scalar(2, "i"), t.scalar(1, "i")),
            "kernel": (t.scalar(4, "i"), t.scalar(3, "i")),
            "activation": ACTIVATIONS[t.scalar(5, "b")],
        }
    if op == "ADD":
        return {"activation": ACTIVATIONS[t.scalar(0, "b")]}
    if op == "CONCATENATION":
        return {"axis": t.scalar(0, "i"), "activation": ACTIVATIONS[t.scalar(1, "b")]}
    if op == "RESHAPE":
        return {"new_shape": tuple(int(v) for v in t.vector(0, "i"))}
    return {}


def read(data: bytes, subgraph: int = 0) -> Graph:
    """The subgraph of a .tflite file, with its constants as numpy arrays."""
    if data[4:8] != b"TFL3":
        raise ValueError("not a TensorFlow Lite flatbuffer (no TFL3 identifier)")
    model = _Table(data, struct.unpack_from("<I", data, 0)[0])
    codes = []
    for code in model.tables(1):
        # builtin_code (int32, slot 3) supersedes deprecated_builtin_code (int8, slot 0) from 2.4 on
        number = max(code.scalar(0, "b"), code.scalar(3, "i"))
        codes.append(BUILTIN.get(number, f"builtin {number}"))
    buffers = [b.vector(0, "B") for b in model.tables(4)]
    graph = model.tables(2)[subgraph]
    tensors = []
    for t in graph.tables(0):
        shape = tuple(int(v) for v in t.vector(0, "i"))
        dtype = DTYPES[t.scalar(1, "b")]
        raw = buffers[t.scalar(2, "I")]
        values = np.frombuffer(raw.tobytes(), dtype).reshape(shape).copy() if len(raw) else None
        tensors.append(Tensor(t.string(3), shape, dtype, values))
    operators = []
    for o in graph.tables(3):
        op = codes[o.scalar(0, "I")]
        opts = o.table(4)
        operators.append(Operator(op, o.vector(1, "i").tolist(), o.vector(2, "i").tolist(), _options(op, opts)))
    return Graph(tensors, operators, graph.vector(1, "i").tolist(), graph.vector(2, "i").tolist())
