NAME = "eval"
HELP = "(being built)"
EXAMPLES = ""


def command() -> None:
    from segedge.errors import SegedgeError

    raise SegedgeError("segedge eval is not implemented yet")
