"""Errors that are shown to the user as one line, without a traceback."""

import functools
import sys


class DenoiseError(Exception):
    """A problem with the user's input (params, files, model) that we can explain in one line."""


class ConfigError(DenoiseError):
    """An invalid value in params.yaml; the message names the key and what is allowed."""


def exit_on_error(main):
    """Run `main`, turning DenoiseError into a one-line message on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except DenoiseError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
