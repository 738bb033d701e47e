"""The API's enum literals are the domain's enums, value for value."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, get_args

import pytest

from adapters.http.schemas import ErrorCodeName, StatusName, StepName
from domain import ErrorCode, JobStatus, Step


@pytest.mark.parametrize(
    ("literal", "enum"),
    [(StatusName, JobStatus), (StepName, Step), (ErrorCodeName, ErrorCode)],
)
def test_literal_lists_exactly_the_domain_values(literal: Any, enum: type[StrEnum]) -> None:
    assert list(get_args(literal)) == [member.value for member in enum]
