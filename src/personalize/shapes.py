"""One declaration per API input, read two ways: the checks the server runs, and the JSON Schema the
OpenAPI description (``api/openapi.py``) shows for it.

A shape such as ``Text(max_len=200, required=True)`` is used by an endpoint to read a field
(``shape.read(body, "title", "products[3].")``, raising :class:`~personalize.validation.InvalidInput`
naming the field's path) and by the description to say what is valid (``shape.schema()``). Both come
from the same numbers, so the description cannot promise what the server refuses, nor call invalid
what it takes.

The schemas are JSON Schema 2020-12, as OpenAPI 3.1 uses it: ``propertyNames`` says what a map's
keys may be, ``type: [..., "null"]`` that ``null`` is taken for an optional field.

Rules that span fields (an ``identify`` needs an email, a customer id or a token) are declared too
(``Obj(any_of=...)``, ``Obj(one_of=...)``) and become ``anyOf``/``oneOf`` of ``required`` lists.
A rule a schema cannot say at all is checked by the endpoint and listed in the operation's
``x-refusals`` (see ``api/openapi.py``), with the field and error code it answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .validation import (
    MAP_KEY_MAX,
    MAP_VALUE_MAX,
    InvalidInput,
    integer,
    mapping,
    number,
    only_known,
    text,
    whole_number,
)

_MISSING = object()
ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")


# Python's \s also matches \x1c-\x1f and \x85, which JSON Schema's (ECMA-262) \s does not; \d and
# the rest of the patterns used here mean the same in both.
_PY_ONLY_SPACE = r"\x1c-\x1f\x85"


def json_pattern(pattern: str) -> str:
    """A Python regular expression written so that JSON Schema (ECMA-262) reads it the same way."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            pair = pattern[i:i + 2]
            if pair == "\\s":
                out.append(pair + _PY_ONLY_SPACE if in_class else f"[\\s{_PY_ONLY_SPACE}]")
            elif pair == "\\S":
                assert not in_class, "\\S inside a class"
                out.append(f"[^\\s{_PY_ONLY_SPACE}]")
            else:
                out.append(pair)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def _with_null(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    if not nullable:
        return schema
    kind = schema.get("type")
    if kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = kind if isinstance(kind, list) else [kind]
    return {**schema, "type": [*kinds, "null"]}


class Shape:
    """A field's declaration. ``required`` fields must be present (and, for text, not empty)."""

    required = False
    description: str | None = None

    def read(self, obj: dict, key: str, path: str) -> Any:  # pragma: no cover - every shape overrides it
        raise NotImplementedError

    def value_schema(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def schema(self, *, as_field: bool = True) -> dict[str, Any]:
        """The JSON Schema of the field; an optional field's also takes ``null`` (read as absent)."""
        schema = self.value_schema()
        if self.description:
            schema = {**schema, "description": self.description}
        return _with_null(schema, as_field and not self.required)


class Text(Shape):
    """A string of at most ``max_len`` characters; ``""`` and ``null`` count as absent (unless a
    ``min_len`` is given: then ``""`` is refused).

    A JSON number is refused, even for an id: ``"123"`` is the id, ``123`` is a mistake to report (a
    large number loses digits in JavaScript before it is ever sent).
    ``check`` runs after the built-in checks on the value read (e.g. an email's form); ``pattern``
    is matched from the start as :func:`re.match` does, which is how JSON Schema reads ``^…``; with a
    ``check``, the check decides and ``pattern`` only describes the form it takes.
    """

    def __init__(self, max_len: int = 200, *, required: bool = False, pattern: re.Pattern | None = None,
                 pattern_message: str | None = None, enum: Iterable[str] | None = None,
                 check: Callable[[str, str], str] | None = None, description: str | None = None,
                 min_len: int | None = None):
        self.max_len, self.required, self.pattern = max_len, required, pattern
        self.pattern_message = pattern_message or "may only contain letters, digits and _ . : -"
        self.enum = tuple(enum) if enum is not None else None
        self.check, self.description, self.min_len = check, description, min_len

    def read(self, obj: dict, key: str, path: str) -> str | None:
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):  # text() would take an int as its digits
            raise InvalidInput(f"{path}{key}", f"must be a string, got {type(value).__name__}")
        if value == "" and self.min_len:  # with a min_len, "" is a wrong value, not an absent one
            raise InvalidInput(f"{path}{key}", f"must be a string of {self.min_len} to {self.max_len} characters")
        value = text(obj, key, path, required=self.required, max_len=self.max_len)
        if value is None:
            return None
        if self.min_len is not None and len(value) < self.min_len:
            raise InvalidInput(f"{path}{key}", f"is shorter than {self.min_len} characters")
        if self.pattern is not None and self.check is None and not self.pattern.match(value):
            raise InvalidInput(f"{path}{key}", self.pattern_message)
        if self.enum is not None and value not in self.enum:
            raise InvalidInput(f"{path}{key}", f"must be one of {', '.join(self.enum)}")
        if self.check is not None:
            value = self.check(value, f"{path}{key}")
        return value

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_len}
        low = max(self.min_len or 0, 1 if self.required else 0)
        if low:
            schema["minLength"] = low
        if self.pattern is not None:
            schema["pattern"] = json_pattern(self.pattern.pattern)
        if self.enum is not None:
            schema = {"type": "string", "enum": list(self.enum)}
        return schema


def Ident(max_len: int = 64, **kw: Any) -> Text:  # noqa: N802 - reads as a type in declarations
    """Letters, digits and ``_ . : -``."""
    return Text(max_len, pattern=ID_RE, **kw)


class Number(Shape):
    def __init__(self, minimum: float | None = None, maximum: float | None = None, *, exclusive_min: bool = False,
                 required: bool = False, description: str | None = None):
        self.minimum, self.maximum, self.exclusive_min = minimum, maximum, exclusive_min
        self.required, self.description = required, description

    def read(self, obj: dict, key: str, path: str) -> float | None:
        return number(obj, key, path, required=self.required, minimum=self.minimum, maximum=self.maximum,
                      exclusive_min=self.exclusive_min)

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            schema["exclusiveMinimum" if self.exclusive_min else "minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


class Whole(Shape):
    """A JSON whole number (``3``, or ``3.0``; not ``3.5`` or ``"3"``) from ``minimum`` to ``maximum``."""

    def __init__(self, minimum: int = 0, maximum: int = 10**6, *, required: bool = False, default: int | None = None,
                 description: str | None = None):
        self.minimum, self.maximum, self.required, self.default, self.description = minimum, maximum, required, default, description

    def read(self, obj: dict, key: str, path: str) -> int | None:
        value = obj.get(key)
        if self.required and value is None:
            raise InvalidInput(f"{path}{key}", "is required", "missing")
        if isinstance(value, float) and value.is_integer():  # JSON has one kind of number: 3.0 is the whole number 3
            obj = {key: int(value)}
        value = integer(obj, key, path, minimum=self.minimum, maximum=self.maximum)
        return self.default if value is None else value

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        if self.default is not None:
            schema["default"] = self.default
        return schema


class Boolean(Shape):
    def __init__(self, *, default: bool | None = None, required: bool = False, description: str | None = None):
        self.default, self.required, self.description = default, required, description

    def read(self, obj: dict, key: str, path: str) -> bool | None:
        value = obj.get(key, _MISSING)
        if value is _MISSING or value is None:
            if self.required:
                raise InvalidInput(f"{path}{key}", "is required", "missing")
            return self.default
        if not isinstance(value, bool):
            raise InvalidInput(f"{path}{key}", "must be true or false")
        return value

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "boolean"}
        if self.default is not None:
            schema["default"] = self.default
        return schema


class Map(Shape):
    """An object of names (at most 100 characters) to a string (at most 2000), number, boolean or null:
    :func:`~personalize.validation.mapping`. ``key_pattern`` (with its message) narrows the names."""

    def __init__(self, max_keys: int = 50, *, key_pattern: re.Pattern | None = None, key_message: str = "",
                 description: str | None = None):
        self.max_keys, self.key_max, self.value_max = max_keys, MAP_KEY_MAX, MAP_VALUE_MAX
        self.key_pattern, self.key_message, self.description = key_pattern, key_message, description

    def read(self, obj: dict, key: str, path: str) -> dict[str, Any]:
        value = mapping(obj, key, path, max_keys=self.max_keys)
        if self.key_pattern is not None:
            for name in value:
                if not self.key_pattern.match(name):
                    raise InvalidInput(f"{path}{key}.{name[:40]}", self.key_message)
        return value

    def value_schema(self) -> dict[str, Any]:
        names: dict[str, Any] = {"maxLength": self.key_max}
        if self.key_pattern is not None:
            names["pattern"] = json_pattern(self.key_pattern.pattern)
        return {"type": "object", "maxProperties": self.max_keys, "propertyNames": names,
                "additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": self.value_max}}


class ObjectMap(Shape):
    """An object of names (matching ``key_pattern``) to objects of one declared shape."""

    def __init__(self, value: Obj, *, max_keys: int, key_pattern: re.Pattern, key_message: str, key_field: str | None = None,
                 required: bool = False, description: str | None = None):
        self.value, self.max_keys, self.key_pattern, self.key_message = value, max_keys, key_pattern, key_message
        self.key_field, self.required, self.description = key_field, required, description

    def read(self, obj: dict, key: str, path: str) -> dict[str, Any] | None:
        value = obj.get(key)
        field = f"{path}{key}"
        if value is None:
            if self.required:
                raise InvalidInput(field, "is required", "missing")
            return None
        if not isinstance(value, dict):
            raise InvalidInput(field, "must be an object")
        if len(value) > self.max_keys:
            raise InvalidInput(field, f"has more than {self.max_keys} keys")
        out = {}
        for name, item in value.items():
            if not self.key_pattern.match(name):
                raise InvalidInput(self.key_field or f"{field}.{name[:40]}", self.key_message)
            out[name] = self.value.read_object(item, f"{field}.{name}")
        return out

    def value_schema(self) -> dict[str, Any]:
        return {"type": "object", "maxProperties": self.max_keys, "propertyNames": {"pattern": json_pattern(self.key_pattern.pattern)},
                "additionalProperties": self.value.schema(as_field=False)}


class List(Shape):
    """A JSON array of ``items`` (each read as a field named by its index: ``items[2]``)."""

    def __init__(self, items: Shape, *, max_items: int, min_items: int = 0, required: bool = False,
                 message: str | None = None, missing_message: str | None = None, description: str | None = None,
                 empty_code: str = "missing"):
        self.empty_code = empty_code
        self.items, self.max_items, self.min_items, self.required = items, max_items, min_items, required
        self.message, self.missing_message, self.description = message, missing_message, description

    def read(self, obj: dict, key: str, path: str) -> list | None:
        value = obj.get(key)
        field = f"{path}{key}"
        if value is None:
            if self.required:
                raise InvalidInput(field, self.missing_message or "is required", "missing")
            return None
        if not isinstance(value, list):
            raise InvalidInput(field, self.message or "must be a list")
        if len(value) > self.max_items:
            raise InvalidInput(field, self.message or f"has more than {self.max_items} entries")
        if len(value) < self.min_items:
            raise InvalidInput(field, self.missing_message or f"needs at least {self.min_items} entries", self.empty_code)
        element = Obj.element_reader(self.items)
        return [element(item, f"{field}[{i}]") for i, item in enumerate(value)]

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.items.schema(as_field=False), "maxItems": self.max_items}
        if self.min_items:
            schema["minItems"] = self.min_items
        return schema


class Obj(Shape):
    """A JSON object of declared fields; any other name is refused (``unknown_field``).

    ``any_of``: at least one of these fields must be given (not empty); ``one_of``: exactly one.
    ``open``: other names are ignored (and the schema allows them).
    """

    def __init__(self, fields: dict[str, Shape], *, required: bool = False, any_of: tuple[str, ...] = (),
                 one_of: tuple[str, ...] = (), one_of_field: str | None = None, message: str | None = None,
                 description: str | None = None, unknown_message: str | None = None, any_of_message: str | None = None,
                 unknown_code: str = "unknown_field", open: bool = False):
        self.any_of_message, self.unknown_code, self.open = any_of_message, unknown_code, open
        self.fields, self.required, self.any_of, self.one_of = fields, required, any_of, one_of
        self.one_of_field, self.message, self.description, self.unknown_message = one_of_field, message, description, unknown_message

    @staticmethod
    def element_reader(shape: Shape) -> Callable[[Any, str], Any]:
        """Read a list element (which has no key of its own) with a field's shape, errors named ``field``."""
        if isinstance(shape, Obj):
            return shape.read_object

        def read(value: Any, field: str) -> Any:
            if value is None:
                raise InvalidInput(field, "must not be null")
            try:
                read = shape.read({"": value}, "", "")
                return value if read is None else read  # an empty string stays itself in a list
            except InvalidInput as exc:
                raise InvalidInput(field + exc.field, exc.message, exc.code) from None

        return read

    def given(self, raw: dict, name: str) -> bool:
        return raw.get(name) not in (None, "")

    def read_object(self, raw: Any, field: str) -> dict[str, Any]:
        """Every declared field of ``raw`` read (absent ones as ``None``); ``field`` is the object's own path."""
        path = f"{field}." if field else ""
        if not isinstance(raw, dict):
            raise InvalidInput(field or "body", self.message or "must be an object")
        if self.open:
            pass  # other names are ignored
        elif self.unknown_message is not None:
            unknown = sorted(set(raw) - set(self.fields))
            if unknown:
                raise InvalidInput(f"{path}{unknown[0]}", self.unknown_message, self.unknown_code)
        else:
            only_known(raw, set(self.fields), path)
        if self.one_of:
            given = [name for name in self.one_of if self.given(raw, name)]
            if len(given) != 1:
                raise InvalidInput(f"{path}{self.one_of_field or self.one_of[0]}",
                                   f"give exactly one of {', '.join(self.one_of)}", "missing" if not given else "invalid")
        values = {name: shape.read(raw, name, path) for name, shape in self.fields.items()}
        if self.any_of and not any(values.get(name) not in (None, "") for name in self.any_of):
            raise InvalidInput(f"{path}{self.any_of[0]}", self.any_of_message or f"give {' or '.join(self.any_of)}", "missing")
        return values

    def read(self, obj: dict, key: str, path: str) -> dict[str, Any] | None:
        value = obj.get(key)
        if value is None:
            if self.required:
                raise InvalidInput(f"{path}{key}", "is required", "missing")
            return None
        return self.read_object(value, f"{path}{key}")

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: shape.schema() for name, shape in self.fields.items()},
        }
        if not self.open:
            schema["additionalProperties"] = False
        required = [name for name, shape in self.fields.items() if shape.required]
        if required:
            schema["required"] = required

        def present(name: str) -> dict[str, Any]:  # given, and not null or ""
            return {"required": [name], "properties": {name: {"not": {"enum": [None, ""]}}}}

        if self.any_of:
            schema["anyOf"] = [present(name) for name in self.any_of]
        if self.one_of:
            schema["oneOf"] = [{**present(name), "not": {"anyOf": [present(o) for o in self.one_of if o != name]}}
                               for name in self.one_of]
        return schema


class Anything(Shape):
    """A field that is taken as it comes and not read here (informational, or read by a layer
    below with its own checks): ``schema`` says what a client should send."""

    def __init__(self, description: str, schema: dict[str, Any] | None = None, *, required: bool = False):
        self.description, self.shown, self.required = description, schema or {}, required

    def read(self, obj: dict, key: str, path: str) -> Any:
        if self.required and key not in obj:
            raise InvalidInput(f"{path}{key}", "is required", "missing")
        return obj.get(key)

    def value_schema(self) -> dict[str, Any]:
        return dict(self.shown)

    def schema(self, *, as_field: bool = True) -> dict[str, Any]:
        return {**self.shown, "description": self.description}


class WholeText(Shape):
    """A query parameter holding a whole number: digits only (no sign, no spaces), ``low`` to ``high``."""

    def __init__(self, low: int, high: int, default: int, *, description: str | None = None, message: str | None = None):
        self.low, self.high, self.default, self.description = low, high, default, description
        self.message = message or f"must be a whole number from {low} to {high}"

    def read(self, obj: Any, key: str, path: str) -> int:
        raw = obj.get(key)
        if raw is None:
            return self.default
        number = whole_number(raw)
        if number is None or not self.low <= number <= self.high:
            raise InvalidInput(f"{path}{key}", self.message)
        return number

    def value_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high, "default": self.default}

    def schema(self, *, as_field: bool = True) -> dict[str, Any]:
        return Shape.schema(self, as_field=False)


class Query:
    """A GET's query parameters: each a shape read from the query string (strings only)."""

    def __init__(self, params: dict[str, tuple[Shape, str]]):
        self.params = params  # name -> (shape, description)

    def read(self, args: Any) -> dict[str, Any]:
        return {name: shape.read(args, name, "") for name, (shape, _) in self.params.items()}

    def read_one(self, args: Any, name: str) -> Any:
        return self.params[name][0].read(args, name, "")

    def parameters(self) -> list[dict[str, Any]]:
        out = []
        for name, (shape, description) in self.params.items():
            schema = shape.schema(as_field=False)
            schema.pop("description", None)
            if isinstance(schema.get("type"), list):  # a query parameter is text: no null, digits for a number
                schema["type"] = [t for t in schema["type"] if t not in ("null", "integer")][0]
            out.append({"name": name, "in": "query", "required": shape.required, "schema": schema,
                        "description": description})
        return out


class Tagged(Shape):
    """One of several objects, told apart by a ``tag`` field holding a constant (an event's ``type``)."""

    def __init__(self, tag: str, variants: dict[str, Obj], *, message: str = "must be an object"):
        self.tag, self.variants, self.message = tag, variants, message

    def read_object(self, raw: Any, field: str) -> tuple[str, dict[str, Any]]:
        if not isinstance(raw, dict):
            raise InvalidInput(field, self.message)
        kind = raw.get(self.tag)
        if not isinstance(kind, str) or kind not in self.variants:  # a list or an object cannot even be looked up
            if kind is None:
                raise InvalidInput(f"{field}.{self.tag}", "is required", "missing")
            raise InvalidInput(f"{field}.{self.tag}", f"must be one of {', '.join(self.variants)}; got {str(kind)[:40]!r}")
        return kind, self.variants[kind].read_object({k: v for k, v in raw.items() if k != self.tag}, field)

    def schema_of(self, kind: str) -> dict[str, Any]:
        schema = self.variants[kind].schema(as_field=False)
        schema["properties"] = {self.tag: {"type": "string", "const": kind}, **schema["properties"]}
        schema["required"] = [self.tag, *schema.get("required", [])]
        return schema

    def value_schema(self) -> dict[str, Any]:
        return {"oneOf": [self.schema_of(kind) for kind in self.variants]}
