"""LLM gateways: the OpenAI-compatible client and the offline provider.

Import the concrete modules (`adapters.llm.openai_gateway`, `adapters.llm.offline`)
directly, so that using the offline provider never imports the `openai` package.
The scripted fake the tests use lives in `tests/support/fake_llm.py`, never here.
"""
