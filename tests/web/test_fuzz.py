"""Schemathesis drives every operation of the OpenAPI document with generated requests (on the
memory broker): no server error, and every response as documented (status, content type,
schema, Allow headers).

Two of its checks are left out on purpose: `positive_data_acceptance`, since a well-formed
request can still name an exchange that does not exist (422 is the right answer), and
`negative_data_rejection`, since unknown query parameters are ignored, as most APIs do.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import negative_data_rejection, positive_data_acceptance  # noqa: E402

import errands  # noqa: E402
from errands.web import WebConfig, create_app  # noqa: E402

AUTH = {"Authorization": "Bearer fuzz"}
app = errands.App("memory://")
# Short waits, so generated long polls do not hold the run.
config = WebConfig(maintenance=False, max_wait=timedelta(seconds=0.1))
schema = schemathesis.openapi.from_asgi(
    "/api/v1/openapi.json", create_app(app, tokens=["fuzz"], config=config), headers=AUTH
)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers=AUTH, excluded_checks=[positive_data_acceptance, negative_data_rejection]
    )
