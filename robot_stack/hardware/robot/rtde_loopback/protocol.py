"""RTDE wire format, protocol version 2: message framing, recipes and value encoding (all big-endian).

Every message is ``uint16 size`` (header included) + ``uint8 type`` + payload. A recipe is an ordered list of
variables with RTDE types; a DATA_PACKAGE is ``uint8 recipe_id`` followed by the recipe's values packed in
order. Anything that does not fit this format raises ``RTDEProtocolError``, whose message is what the server
logs before it closes the offending connection.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

PROTOCOL_VERSION = 2
HEADER = struct.Struct(">HB")
MAX_MESSAGE_SIZE = 0xFFFF  # the size field is a uint16
# The controller refuses variable lists longer than this (RTDE guide); so do we.
MAX_NAMES_BYTES = 2048


class MessageType(enum.IntEnum):
    """RTDE message types (the ASCII code of the letter in the RTDE guide)."""

    REQUEST_PROTOCOL_VERSION = 86  # 'V'
    GET_URCONTROL_VERSION = 118  # 'v'
    TEXT_MESSAGE = 77  # 'M'
    DATA_PACKAGE = 85  # 'U'
    CONTROL_PACKAGE_SETUP_OUTPUTS = 79  # 'O'
    CONTROL_PACKAGE_SETUP_INPUTS = 73  # 'I'
    CONTROL_PACKAGE_START = 83  # 'S'
    CONTROL_PACKAGE_PAUSE = 80  # 'P'


class MessageLevel(enum.IntEnum):
    """Severity of a TEXT_MESSAGE."""

    EXCEPTION = 0
    ERROR = 1
    WARNING = 2
    INFO = 3


# struct codes of the RTDE data types (the vector types are fixed-size arrays).
TYPE_CODES: dict[str, str] = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT32": "I",
    "UINT64": "Q",
    "INT32": "i",
    "DOUBLE": "d",
    "VECTOR3D": "3d",
    "VECTOR6D": "6d",
    "VECTOR6INT32": "6i",
    "VECTOR6UINT32": "6I",
}
_VECTOR_LENGTHS = {"VECTOR3D": 3, "VECTOR6D": 6, "VECTOR6INT32": 6, "VECTOR6UINT32": 6}


class RTDEProtocolError(ValueError):
    """A message that does not follow the RTDE protocol; the text says what was wrong."""


def pack_message(mtype: int, payload: bytes = b"") -> bytes:
    """Frame ``payload`` as one RTDE message of type ``mtype``."""
    size = HEADER.size + len(payload)
    if size > MAX_MESSAGE_SIZE:
        raise RTDEProtocolError(f"message of {size} bytes exceeds the RTDE maximum of {MAX_MESSAGE_SIZE}")
    return HEADER.pack(size, mtype) + payload


def pack_text_message(text: str, level: MessageLevel, source: str = "rtde_loopback") -> bytes:
    """A TEXT_MESSAGE (protocol v2 layout: length-prefixed message and source, then the level)."""
    msg = text.encode("utf-8", "replace")[:255]
    src = source.encode("ascii", "replace")[:255]
    payload = bytes([len(msg)]) + msg + bytes([len(src)]) + src + bytes([int(level)])
    return pack_message(MessageType.TEXT_MESSAGE, payload)


class MessageReader:
    """Splits a TCP byte stream into ``(type, payload)`` messages, holding back incomplete ones."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return the complete messages they finish (in order)."""
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while len(self._buf) >= HEADER.size:
            size, mtype = HEADER.unpack_from(self._buf)
            if size < HEADER.size:
                raise RTDEProtocolError(f"message size field is {size}, smaller than the 3-byte header")
            if len(self._buf) < size:
                break
            out.append((mtype, bytes(self._buf[HEADER.size : size])))
            del self._buf[:size]
        return out

    @property
    def pending(self) -> int:
        """Bytes received that do not form a complete message yet."""
        return len(self._buf)


def parse_names(payload: bytes, what: str) -> list[str]:
    """The comma-separated variable names of a setup request (a trailing comma is allowed)."""
    if len(payload) > MAX_NAMES_BYTES:
        raise RTDEProtocolError(f"{what}: variable list of {len(payload)} bytes exceeds {MAX_NAMES_BYTES}")
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        raise RTDEProtocolError(f"{what}: variable names are not ASCII") from None
    names = [n.strip() for n in text.split(",")]
    if names and names[-1] == "":
        names.pop()
    if not names or any(not n for n in names):
        raise RTDEProtocolError(f"{what}: empty variable name in {text!r}")
    return names


@dataclass
class Recipe:
    """An ordered list of variables and their RTDE types, with its packed layout."""

    recipe_id: int
    names: list[str]
    types: list[str]
    _struct: struct.Struct = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in TYPE_CODES]
        if unknown:
            raise ValueError(f"not RTDE types: {unknown}")
        self._struct = struct.Struct(">B" + "".join(TYPE_CODES[t] for t in self.types))

    @property
    def size(self) -> int:
        """Bytes of one DATA_PACKAGE payload of this recipe (recipe id included)."""
        return self._struct.size

    def pack(self, values: Sequence[Any]) -> bytes:
        """DATA_PACKAGE payload for ``values`` (one per variable, vectors as sequences)."""
        flat: list[Any] = [self.recipe_id]
        for t, v in zip(self.types, values):
            if t in _VECTOR_LENGTHS:
                flat.extend(v)
            else:
                flat.append(v)
        return self._struct.pack(*flat)

    def unpack(self, payload: bytes) -> list[Any]:
        """Values of a DATA_PACKAGE payload (recipe id included) of this recipe."""
        if len(payload) != self._struct.size:
            raise RTDEProtocolError(
                f"DATA_PACKAGE for recipe {self.recipe_id} has {len(payload)} bytes, expected {self._struct.size}"
            )
        flat = self._struct.unpack(payload)
        values: list[Any] = []
        i = 1
        for t in self.types:
            n = _VECTOR_LENGTHS.get(t)
            if n is None:
                values.append(flat[i])
                i += 1
            else:
                values.append(tuple(flat[i : i + n]))
                i += n
        return values


def join_types(types: Iterable[str]) -> bytes:
    """The comma-separated type list of a setup reply."""
    return ",".join(types).encode("ascii")
