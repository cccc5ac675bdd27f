"""A Delta table's schema as ``deltalake`` shapes it: :class:`Schema` of
:class:`Field` (name, type, nullable, metadata) with Delta's types
(:class:`PrimitiveType`, :class:`ArrayType`, :class:`MapType`, :class:`StructType`).

``DeltaTable.schema()`` returns a :class:`Schema`; ``.to_arrow()`` (or
``.to_pyarrow()``) gives the pyarrow Schema the table reads as."""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Union

import pyarrow as pa

_PRIMITIVES = {
    "string": pa.string(), "long": pa.int64(), "integer": pa.int32(), "short": pa.int16(),
    "byte": pa.int8(), "float": pa.float32(), "double": pa.float64(), "boolean": pa.bool_(),
    "binary": pa.binary(), "date": pa.date32(), "timestamp": pa.timestamp("us", "UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


class PrimitiveType:
    """A primitive Delta type by its Delta name: ``"long"``, ``"string"``, ``"decimal(10,2)"``..."""

    def __init__(self, data_type: str):
        if data_type not in _PRIMITIVES and not _DECIMAL.match(data_type):
            raise ValueError(f"{data_type!r} is not a Delta primitive type (one of "
                             f"{', '.join(sorted(_PRIMITIVES))} or decimal(p,s))")
        self.type = data_type

    def to_json(self) -> str:
        return json.dumps(self.type)

    def _json(self) -> Any:
        return self.type

    def to_arrow(self) -> pa.DataType:
        m = _DECIMAL.match(self.type)
        return pa.decimal128(int(m.group(1)), int(m.group(2))) if m else _PRIMITIVES[self.type]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrimitiveType) and other.type == self.type

    def __hash__(self) -> int:
        return hash(self.type)

    def __repr__(self) -> str:
        return f'PrimitiveType("{self.type}")'


class ArrayType:
    def __init__(self, element_type: "DataType", contains_null: bool = True):
        self.type = "array"
        self.element_type = element_type
        self.contains_null = contains_null

    def _json(self) -> Any:
        return {"type": "array", "elementType": self.element_type._json(),
                "containsNull": self.contains_null}

    def to_json(self) -> str:
        return json.dumps(self._json(), separators=(",", ":"))

    def to_arrow(self) -> pa.DataType:
        return pa.list_(pa.field("element", self.element_type.to_arrow(), self.contains_null))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArrayType) and other._json() == self._json()

    def __repr__(self) -> str:
        return f"ArrayType({self.element_type!r}, contains_null={self.contains_null})"


class MapType:
    def __init__(self, key_type: "DataType", value_type: "DataType", value_contains_null: bool = True):
        self.type = "map"
        self.key_type = key_type
        self.value_type = value_type
        self.value_contains_null = value_contains_null

    def _json(self) -> Any:
        return {"type": "map", "keyType": self.key_type._json(),
                "valueType": self.value_type._json(), "valueContainsNull": self.value_contains_null}

    def to_json(self) -> str:
        return json.dumps(self._json(), separators=(",", ":"))

    def to_arrow(self) -> pa.DataType:
        return pa.map_(self.key_type.to_arrow(),
                       pa.field("value", self.value_type.to_arrow(), self.value_contains_null))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MapType) and other._json() == self._json()

    def __repr__(self) -> str:
        return (f"MapType({self.key_type!r}, {self.value_type!r}, "
                f"value_contains_null={self.value_contains_null})")


class StructType:
    def __init__(self, fields: List["Field"]):
        self.type = "struct"
        self.fields = list(fields)

    def _json(self) -> Any:
        return {"type": "struct", "fields": [f._json() for f in self.fields]}

    def to_json(self) -> str:
        return json.dumps(self._json(), separators=(",", ":"))

    def to_arrow(self) -> pa.DataType:
        return pa.struct([f.to_arrow() for f in self.fields])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StructType) and other._json() == self._json()

    def __repr__(self) -> str:
        return f"StructType([{', '.join(repr(f) for f in self.fields)}])"


DataType = Union[PrimitiveType, ArrayType, MapType, StructType]


def _type_from_json(t: Any) -> DataType:
    if isinstance(t, str):
        return PrimitiveType(t)
    kind = t.get("type")
    if kind == "array":
        return ArrayType(_type_from_json(t["elementType"]), bool(t.get("containsNull", True)))
    if kind == "map":
        return MapType(_type_from_json(t["keyType"]), _type_from_json(t["valueType"]),
                       bool(t.get("valueContainsNull", True)))
    if kind == "struct":
        return StructType([Field._from_json(f) for f in t.get("fields", [])])
    raise ValueError(f"unknown Delta type {t!r}")


def _type_from_arrow(t: pa.DataType) -> DataType:
    if pa.types.is_decimal(t):
        return PrimitiveType(f"decimal({t.precision},{t.scale})")
    if pa.types.is_timestamp(t):
        return PrimitiveType("timestamp" if t.tz else "timestamp_ntz")
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return PrimitiveType("string")
    if pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return PrimitiveType("binary")
    if pa.types.is_map(t):
        return MapType(_type_from_arrow(t.key_type), _type_from_arrow(t.item_type),
                       t.item_field.nullable)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return ArrayType(_type_from_arrow(t.value_type), t.value_field.nullable)
    if pa.types.is_struct(t):
        return StructType([Field._from_arrow(t.field(i)) for i in range(t.num_fields)])
    for name, at in _PRIMITIVES.items():
        if at == t:
            return PrimitiveType(name)
    widened = {pa.uint8(): "short", pa.uint16(): "integer", pa.uint32(): "long", pa.uint64(): "long",
               pa.date64(): "date"}
    if t in widened:
        return PrimitiveType(widened[t])
    raise TypeError(f"Arrow type {t} has no Delta type")


class Field:
    """One column: ``name``, ``type`` (a Delta type), ``nullable`` and ``metadata``."""

    def __init__(self, name: str, type: Union[DataType, str], nullable: bool = True,
                 metadata: Optional[Dict[str, Any]] = None):
        self.name = name
        self.type = PrimitiveType(type) if isinstance(type, str) else type
        self.nullable = nullable
        self.metadata = dict(metadata or {})

    @staticmethod
    def _from_json(f: Dict[str, Any]) -> "Field":
        return Field(f["name"], _type_from_json(f["type"]), bool(f.get("nullable", True)),
                     f.get("metadata") or {})

    @staticmethod
    def _from_arrow(f: pa.Field) -> "Field":
        return Field(f.name, _type_from_arrow(f.type), f.nullable)

    @staticmethod
    def from_json(text: str) -> "Field":
        return Field._from_json(json.loads(text))

    @staticmethod
    def from_arrow(field: Any) -> "Field":
        return Field._from_arrow(pa.field(field))

    def _json(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.type._json(), "nullable": self.nullable,
                "metadata": self.metadata}

    def to_json(self) -> str:
        return json.dumps(self._json(), separators=(",", ":"))

    def to_arrow(self) -> pa.Field:
        return pa.field(self.name, self.type.to_arrow(), self.nullable)

    to_pyarrow = to_arrow

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and other._json() == self._json()

    def __repr__(self) -> str:
        return f"Field({self.name}, {self.type!r}, nullable={self.nullable})"


class Schema(StructType):
    """A table's schema: ``fields``, ``to_json()``, ``to_arrow()``/``to_pyarrow()``."""

    def __init__(self, fields: List[Field], _arrow: Optional[pa.Schema] = None):
        super().__init__(fields)
        self._arrow = _arrow

    @staticmethod
    def from_json(text: str) -> "Schema":
        d = json.loads(text)
        return Schema([Field._from_json(f) for f in d.get("fields", [])])

    @staticmethod
    def from_arrow(schema: Any) -> "Schema":
        s = pa.schema(schema)
        return Schema([Field._from_arrow(f) for f in s], s)

    @property
    def invariants(self) -> List[Any]:
        out = []
        for f in self.fields:
            inv = f.metadata.get("delta.invariants")
            if inv is not None:
                expr = json.loads(inv) if isinstance(inv, str) else inv
                out.append((f.name, expr.get("expression", {}).get("expression", "")))
        return out

    def json(self) -> Dict[str, Any]:
        return self._json()

    def to_arrow(self, as_large_types: bool = False) -> pa.Schema:
        """The pyarrow Schema of the table's rows (Delta's types in Arrow)."""
        s = self._arrow if self._arrow is not None else pa.schema(f.to_arrow() for f in self.fields)
        if as_large_types:
            s = pa.schema([f.with_type(pa.large_string()) if pa.types.is_string(f.type)
                           else f.with_type(pa.large_binary()) if pa.types.is_binary(f.type) else f
                           for f in s])
        return s

    def to_pyarrow(self, as_large_types: bool = False) -> pa.Schema:
        return self.to_arrow(as_large_types)

    def __arrow_c_schema__(self) -> Any:
        return self.to_arrow().__arrow_c_schema__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StructType) and other._json() == self._json()

    def __repr__(self) -> str:
        return f"Schema([{', '.join(repr(f) for f in self.fields)}])"
