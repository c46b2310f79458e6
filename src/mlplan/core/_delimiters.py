"""CSV delimiters: the ones a file is sniffed for, and how users name them."""

from __future__ import annotations

__all__ = ["DELIMITERS", "parse_delimiter"]

# The delimiters a CSV file is sniffed for, with the names users may give them by.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_BY_NAME = {name: delimiter for delimiter, name in DELIMITERS.items()} | {"\\t": "\t"}


def parse_delimiter(value: str) -> str:
    """The delimiter ``value`` names: one character, or comma, semicolon, tab or pipe (or
    ``\\t``) by name.

    Raises
    ------
    ValueError
        Not one character and no delimiter's name; a quote or a line break.

    Examples
    --------
    >>> parse_delimiter("tab"), parse_delimiter(";"), parse_delimiter("\\\\t")
    ('\\t', ';', '\\t')
    """
    delimiter = _BY_NAME.get(value.strip().lower(), value)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise ValueError(
            f"delimiter must be one character (not a quote or a line break) or one of "
            f"{', '.join(DELIMITERS.values())}; got {value!r}"
        )
    return delimiter
