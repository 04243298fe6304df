"""The agent over the tools: LLM backends (vLLM, any OpenAI-compatible endpoint, the offline planner),
the LangChain agent graph with its grounding check, the bounded per-caller session store, the agent's
HTTP routes, and the eval harness. Imports from predictor/ and tools/; never from ui.py.
"""
