"""Typed views of decoded JSON and YAML, for strict type checking."""

from __future__ import annotations

from typing import Any, cast

__all__ = ["as_list", "as_mapping"]


def as_mapping(value: object) -> dict[str, Any] | None:
    """`value` as a mapping with string keys, or None if it is not a mapping."""
    return cast("dict[str, Any]", value) if isinstance(value, dict) else None


def as_list(value: object) -> list[Any] | None:
    """`value` as a list, or None if it is not a list."""
    if not isinstance(value, list):
        return None
    items: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
    return items
