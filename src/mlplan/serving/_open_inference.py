"""The Open Inference Protocol's parts beyond plain JSON: server metadata, the model
configuration, and the binary tensor data extension (Triton's client sends and asks for
binary tensors by default).

A binary request is a JSON header, ``Inference-Header-Content-Length`` bytes long, followed
by each binary input's raw bytes in order (``parameters.binary_data_size`` each):
little-endian, row major, and for ``BYTES`` a 4-byte length before each element. Every size
is checked against the body before a byte is read: the sizes must add up to what follows
the header exactly, and a tensor's size must be its shape times its datatype's.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlplan._version import __version__

__all__ = [
    "EXTENSIONS",
    "HEADER_LENGTH",
    "attach_binary_inputs",
    "binary_tensor",
    "header_length",
    "requested_outputs",
    "server_metadata",
]

EXTENSIONS = ["binary_tensor_data", "model_configuration"]
"""The protocol's extensions this server supports (and lists in its metadata)."""

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The header that says how long a binary body's JSON part is."""

_DTYPES: dict[str, str] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BF16": "<u2",  # its bits, for the size; no input of ours takes it
}
"""Numpy's little-endian dtype of each fixed-size datatype of the protocol."""

_LENGTH = struct.Struct("<I")


def server_metadata() -> dict[str, Any]:
    """``GET /v2``: the server's name, version and the extensions it supports."""
    return {"name": "mlplan", "version": __version__, "extensions": list(EXTENSIONS)}


def header_length(value: str | None, body_bytes: int) -> int | str | None:
    """The JSON header's length from ``Inference-Header-Content-Length`` (None without the
    header: the whole body is JSON), or the problem with it."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        return f"{HEADER_LENGTH}: expected the JSON header's length in bytes"
    length = int(value)
    if not 0 < length <= body_bytes:
        return (
            f"{HEADER_LENGTH} is {length:,} bytes, but the body holds {body_bytes:,}: "
            "the JSON header must be within the body"
        )
    return length


def attach_binary_inputs(body: Mapping[str, Any], binary: bytes | memoryview) -> str | None:
    """Put each binary input's values in its ``data`` (a flat numpy array; strings for
    ``BYTES``), read from ``binary``, the bytes after the JSON header; or the problem, if
    any size does not hold (nothing is read past what was sent)."""
    inputs = body.get("inputs")
    view = memoryview(binary)  # slices of it copy nothing
    offset = 0
    if isinstance(inputs, list):
        for i, tensor in enumerate(inputs):
            if not isinstance(tensor, dict):
                continue
            parameters = tensor.get("parameters")
            if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
                continue
            size = parameters["binary_data_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                return f"inputs[{i}].parameters.binary_data_size: expected a number of bytes"
            if "data" in tensor:
                return f"inputs[{i}]: give data or binary_data_size, not both"
            if size > len(binary) - offset:
                return (
                    f"inputs[{i}].parameters.binary_data_size is {size:,} bytes, but only "
                    f"{len(binary) - offset:,} follow"
                    + (" the JSON header" if offset == 0 else " the inputs before it")
                )
            values = _decode(tensor, view[offset : offset + size], f"inputs[{i}]")
            if isinstance(values, str):
                return values
            tensor["data"] = values
            offset += size
    if offset != len(binary):
        return (
            f"{len(binary):,} bytes follow the JSON header, but the inputs' binary_data_size "
            f"add up to {offset:,}"
        )
    return None


def _decode(tensor: Mapping[str, Any], raw: memoryview, where: str) -> np.ndarray | str:
    """One binary tensor's values, flat, or the problem (its size against its shape)."""
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape
    ):
        return f"{where}.shape: expected a list of sizes"
    count = math.prod(shape)
    datatype = tensor.get("datatype")
    if datatype == "BYTES":
        return _decode_bytes(raw, count, where)
    if not isinstance(datatype, str) or datatype not in _DTYPES:
        return f"{where}.datatype: expected one of the protocol's: BYTES, {', '.join(_DTYPES)}"
    dtype = np.dtype(_DTYPES[datatype])
    if count * dtype.itemsize != len(raw):
        return (
            f"{where}: shape {shape} of {datatype} takes {count * dtype.itemsize:,} bytes; "
            f"binary_data_size says {len(raw):,}"
        )
    return np.frombuffer(raw, dtype=dtype)


def _decode_bytes(raw: memoryview, count: int, where: str) -> np.ndarray | str:
    """``count`` strings, each a 4-byte little-endian length and its UTF-8 bytes, that fill
    ``raw`` exactly; or the problem."""
    if count * _LENGTH.size > len(raw):
        return (
            f"{where}: {count:,} BYTES elements take at least {count * 4:,} bytes; "
            f"binary_data_size says {len(raw):,}"
        )
    data = bytes(raw)
    unpack, end = _LENGTH.unpack_from, len(data)
    chunks: list[bytes] = []
    position = 0
    for k in range(count):  # each length says where the next element starts
        if position + 4 > end:
            return f"{where}: BYTES element {k} has no length: binary_data_size ends first"
        start = position + 4
        position = start + unpack(data, position)[0]
        if position > end:
            return f"{where}: BYTES element {k} runs past binary_data_size"
        chunks.append(data[start:position])
    if position != end:
        return (
            f"{where}: the {count:,} BYTES elements take {position:,} bytes; "
            f"binary_data_size says {end:,}"
        )
    values = np.empty(count, dtype=object)
    try:
        values[:] = [chunk.decode("utf-8") for chunk in chunks]
    except UnicodeDecodeError:
        k = next(k for k, chunk in enumerate(chunks) if not _utf8(chunk))
        return f"{where}: BYTES element {k} is not valid UTF-8"
    return values


def _utf8(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def requested_outputs(body: Mapping[str, Any], names: list[str]) -> dict[str, bool] | str:
    """The outputs to answer, each with whether as binary data (``outputs[].parameters.
    binary_data``, by default the request's ``parameters.binary_data_output``); all of them
    without ``outputs``. Or the problem."""
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        return "parameters: expected an object"
    default = parameters.get("binary_data_output", False)
    if not isinstance(default, bool):
        return "parameters.binary_data_output: expected true or false"
    outputs = body.get("outputs")
    if outputs is None:
        return dict.fromkeys(names, default)
    if not isinstance(outputs, list):
        return "outputs: expected a list of outputs"
    wanted: dict[str, bool] = {}
    for i, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in names:
            return f"outputs[{i}].name: unknown output; the model gives: {', '.join(names)}"
        if name in wanted:
            return f"outputs[{i}].name: output asked for twice"
        given = output.get("parameters", {})
        if not isinstance(given, dict):
            return f"outputs[{i}].parameters: expected an object"
        if given.get("classification"):
            return (
                f"outputs[{i}]: the classification extension is not supported; "
                "ask for the label and probabilities outputs"
            )
        binary = given.get("binary_data", default)
        if not isinstance(binary, bool):
            return f"outputs[{i}].parameters.binary_data: expected true or false"
        wanted[name] = binary
    return wanted


def binary_tensor(datatype: str, values: np.ndarray) -> bytes:
    """``values`` as the binary tensor data extension sends them: little-endian, row major;
    ``BYTES`` as a 4-byte length and the UTF-8 bytes of each element."""
    if datatype == "BYTES":
        encoded = [str(v).encode("utf-8") for v in values.ravel().tolist()]
        return b"".join(_LENGTH.pack(len(b)) + b for b in encoded)
    return np.ascontiguousarray(values, dtype=_DTYPES[datatype]).tobytes()
