"""A base for partial updates (PATCH bodies): only the fields sent change.

An explicit ``null`` may clear only the fields a model names in ``nullable``; anywhere
else it would store a hole that the read model cannot show, so it is refused (422).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class Patch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None and k not in cls.nullable)
            if nulls:
                raise PydanticCustomError(
                    "null_not_allowed", "{fields}: may not be null", {"fields": ", ".join(nulls)}
                )
        return data
