NAME = "export"
HELP = "(being built)"
EXAMPLES = ""


def command() -> None:
    from segedge.errors import SegedgeError

    raise SegedgeError("segedge export is not implemented yet")
