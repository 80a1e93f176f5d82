"""One exception type for problems a user can act on; the CLI prints it as one line and exits non-zero."""


class SegedgeError(Exception):
    """A clear, one-line, user-facing error (bad input, missing dependency, wrong model file)."""


def missing_extra(package: str, extra: str) -> SegedgeError:
    return SegedgeError(f"{package} is not installed; install it with: pip install 'segedge[{extra}]'")
