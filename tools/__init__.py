"""The typed tool functions over the core (pydantic in and out; the docstring is the description), the
registry and its dependencies object (`deps`: the serving build's tables, model and index, loaded once),
and the surfaces that serve the same tools: the HTTP app (`api`), MCP (`mcp_server`) and `valuedesk tool`.
Imports from predictor/ only; never from agent/ or ui.py.
"""
