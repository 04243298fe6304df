"""The wiring above every layer: the one place that reads the environment (`config.load_settings`),
the `valuedesk` command line (`cli`: each layer registers its own subcommands), the one HTTP server
that mounts the tools' and the agent's routes (`server`), and the first-run bootstrap of the UI
(`bootstrap`: build what is missing, warm the agent, launch). Imports predictor/, tools/ and agent/;
nothing below imports it, and ui.py is imported only inside the `ui` subcommand's handler.
"""
