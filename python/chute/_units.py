"""Option values: byte sizes ("64MB", "1.5GiB") and storage options."""

import re

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_size(value, name: str = "size") -> int:
    """Bytes in ``value`` (an int, or a string like "64MB", "512KiB", "2 GB")."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of bytes or a string like '64MB', not {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"{name}={value!r} is not a size: use e.g. '64MB', '512KiB' or a number of bytes")
        size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise TypeError(f"{name} must be a number of bytes or a string like '64MB', not {value!r}")
    if size <= 0:
        raise ValueError(f"{name}={value!r} must be positive")
    return size


def storage_options_to_strings(options) -> dict:
    """storage_options for chute._core: every value as a string (bools as true/false)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"storage_options must be a dict, not {type(options).__name__}")
    out = {}
    for key, value in options.items():
        if value is None:
            continue
        out[str(key)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out
