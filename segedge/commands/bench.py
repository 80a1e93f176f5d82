NAME = "bench"
HELP = "(being built)"
EXAMPLES = ""


def command() -> None:
    from segedge.errors import SegedgeError

    raise SegedgeError("segedge bench is not implemented yet")
