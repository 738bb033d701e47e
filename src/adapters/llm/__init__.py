"""LLM gateways: the OpenAI-compatible client, the offline provider and a scripted fake.

Import the concrete modules (`adapters.llm.openai_gateway`, `adapters.llm.offline`,
`adapters.llm.fake`) directly, so that using the offline provider or the fake never
imports the `openai` package.
"""
