"""Lines to a shared terminal or log file, whole."""


def write_line(stream, text: str) -> None:
    """text and its newline in one write: `print(text, file=sys.stderr)` makes two, and the output
    of another process on the same terminal or log file can land between them."""
    stream.write(text + "\n")
    stream.flush()
