"""The API process never loads the `openai` package (~50 MB): only workers call the LLM."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
from entrypoints.asgi import create_app
create_app()
print("openai" in sys.modules, "adapters.llm.openai_gateway" in sys.modules)
"""

# Production mode with the OpenAI provider; nothing is connected to while building.
PRODUCTION = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    "LLM_PROVIDER": "openai",
    "OPENAI_API_KEY": "sk-test",
}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **PRODUCTION},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_production_api_app_is_built_without_importing_openai() -> None:
    done = _run(PROBE)
    assert done.stdout.split() == ["False", "False"]


def test_a_worker_container_loads_it_when_it_builds_the_gateway() -> None:
    probe = (
        "import sys\n"
        "from entrypoints.container import build_container\n"
        "from entrypoints.settings import load_settings\n"
        "build_container(load_settings()).llm()\n"
        "print('openai' in sys.modules)\n"
    )
    done = _run(probe)
    assert done.stdout.split() == ["True"]
