"""One exception type for problems a user can act on; the CLI prints it as one line and exits non-zero."""


class SegedgeError(Exception):
    """A clear, one-line, user-facing error (bad input, missing dependency, wrong model file)."""


def missing_extra(package: str, extra: str) -> SegedgeError:
    return SegedgeError(f"{package} is not installed; install it with: pip install 'segedge[{extra}]'")


def first_line(exc: BaseException) -> str:
    """An exception's message as one line for a one-line error: its first line, else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
