"""One module per CLI command: NAME, HELP, EXAMPLES and a typer-annotated `command` function."""
