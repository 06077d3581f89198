"""`errands serve`: refuses to listen beyond this machine without a token, and checks the
tokens it was given."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from errands.cli.main import main
from tests.web.conftest import Processes


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_serve_refuses_a_non_local_host_without_a_token(
    processes: Processes, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ERRANDS_API_TOKENS", raising=False)
    args = ["--app-dir", str(processes.tmp_path), "serve", "webtasks:app", "--host", host]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"refusing to serve on {host} without a token" in result.output


def test_a_served_api_checks_the_tokens_of_the_option_and_the_environment(
    processes: Processes,
) -> None:
    env = processes.env(ERRANDS_API_TOKENS="from-env")
    base = processes.serve("--token", "from-cli", env=env)
    assert httpx.get(f"{base}/queues").status_code == 401
    for token in ("from-cli", "from-env"):
        reply = httpx.get(f"{base}/queues", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200
