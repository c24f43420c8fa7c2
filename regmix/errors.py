"""The one exception type for mistakes a user can make (bad input, bad config)."""


class UserError(Exception):
    """A problem the user can fix; stage entry points print it without a traceback."""
