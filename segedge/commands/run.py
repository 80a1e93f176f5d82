NAME = "run"
HELP = "(being built)"
EXAMPLES = ""


def command() -> None:
    from segedge.errors import SegedgeError

    raise SegedgeError("segedge run is not implemented yet")
