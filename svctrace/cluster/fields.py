"""Typed reads of API object fields, for the converter. Each names the object and the field
when the value has the wrong type or is out of range, as the API server's validation would
("Service shop/web: spec.ports[0].port: must be between 1 and 65535, got -1"): a snapshot is
a file anyone can edit, and what it holds must never reach the model unchecked.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

Obj = dict[str, Any]


class ConversionError(ValueError):
    """An API object that does not have the shape the API defines."""


def show(value: Any) -> str:
    """A short description of a bad value for an error line (never the whole of it)."""
    if isinstance(value, dict | list):
        return f"a{'n object' if isinstance(value, dict) else ' list'}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def at(where: str, key: str) -> str:
    """The location of field `key` under `where` ("Service ns/web: " + spec → "...: spec")."""
    return f"{where}{key}" if not where or where.endswith(": ") else f"{where}.{key}"


# Every reader takes the fast path for a well-formed value and builds the location (a string)
# only for the error: a namespace of 2,000 pods has some 100,000 fields.

def mapping(obj: Obj, key: str, where: str) -> Obj:
    value = obj.get(key)
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    raise ConversionError(f"{at(where, key)}: expected an object, got {show(value)}")


def objects(obj: Obj, key: str, where: str) -> list[tuple[Obj, str]]:
    """A list of objects, each with its location (`spec.ports[2]`)."""
    value = obj.get(key)
    if not value:
        return [] if value is None or isinstance(value, list) else _wrong_list(value, where, key)
    if not isinstance(value, list):
        _wrong_list(value, where, key)
    where = at(where, key)
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConversionError(f"{where}[{index}]: expected an object, got {show(item)}")
        out.append((item, f"{where}[{index}]"))
    return out


def strings(obj: Obj, key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        _wrong_list(value, where, key)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ConversionError(f"{at(where, key)}[{index}]: expected a string, got "
                                  f"{show(item)}")
    return tuple(value)


def text(obj: Obj, key: str, where: str, default: str | None = None) -> str | None:
    """An optional string field; `default` when absent or empty."""
    value = obj.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value
    raise ConversionError(f"{at(where, key)}: expected a string, got {show(value)}")


def flag(obj: Obj, key: str, where: str) -> bool | None:
    """An optional boolean field."""
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ConversionError(f"{at(where, key)}: expected true or false, got {show(value)}")


def integer(obj: Obj, key: str, where: str, low: int = -(2 ** 63),
            high: int | None = None) -> int | None:
    """An optional integer field (decimal strings accepted), within [low, high] when given."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or \
            (isinstance(value, str) and not _decimal(value)):
        raise ConversionError(f"{at(where, key)}: expected an integer, got {show(value)}")
    number = int(value)
    if high is not None and not low <= number <= high:
        raise ConversionError(f"{at(where, key)}: must be between {low} and {high}, got "
                              f"{number}")
    if number < low:
        raise ConversionError(f"{at(where, key)}: must be at least {low}, got {number}")
    return number


def port(obj: Obj, key: str, where: str) -> int | None:
    """An optional port number, 1-65535."""
    return integer(obj, key, where, 1, 65535)


def ip(value: Any, where: str) -> str:
    """An IPv4 or IPv6 address, as written (as ipaddress.ip_address reads it: no leading
    zeros; inet_pton first, it is twenty times faster on the usual dotted quad)."""
    address = _str(value, where)
    try:
        socket.inet_pton(socket.AF_INET, address)
        if not any(len(o) > 1 and o[0] == "0" for o in address.split(".")):
            return address
    except OSError:
        pass
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ConversionError(f"{where}: not an IP address: {show(address)}") from None
    return address


def cidr(value: Any, where: str) -> str:
    """A network in CIDR notation, as written (host bits allowed, as the API allows them)."""
    network = _str(value, where)
    try:
        ipaddress.ip_network(network.strip(), strict=False)
    except ValueError:
        raise ConversionError(f"{where}: not a CIDR: {show(network)}") from None
    return network


def labels(obj: Obj, key: str, where: str) -> dict[str, str]:
    """A map of strings (labels, a selector); scalar values are taken as their text."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConversionError(f"{at(where, key)}: expected a map of strings, got "
                              f"{show(value)}")
    if all(type(k) is str and type(v) is str for k, v in value.items()):
        return dict(value)
    out = {}
    for k, v in value.items():
        if isinstance(v, dict | list) or v is None:
            raise ConversionError(f"{at(where, key)}.{k}: expected a string, got {show(v)}")
        out[str(k)] = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) \
            else str(v)
    return out


def _wrong_list(value: Any, where: str, key: str) -> list[Any]:
    raise ConversionError(f"{at(where, key)}: expected a list, got {show(value)}")


def _str(value: Any, at: str) -> str:
    if not isinstance(value, str):
        raise ConversionError(f"{at}: expected a string, got {show(value)}")
    return value


def _decimal(value: str) -> bool:
    digits = value[1:] if value[:1] == "-" else value
    return digits.isascii() and digits.isdigit()
