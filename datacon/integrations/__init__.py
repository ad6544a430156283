"""Adapters for the frameworks applications already run (each behind its own pip extra).

- :mod:`datacon.integrations.openai_agents`: ``DataconSession``, the OpenAI Agents SDK's
  ``Session`` (``pip install "datacon-store[openai-agents]"``);
- :mod:`datacon.integrations.langchain`: ``DataconChatMessageHistory``, LangChain's
  ``BaseChatMessageHistory`` (``pip install "datacon-store[langchain]"``).

Importing this package imports no framework; each module imports its own.
"""
