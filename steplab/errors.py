"""The one error type the command line turns into a one-line message."""


class UserError(Exception):
    """Bad input or an unusable device/file: the message is shown as is, exit status 2.

    Raise it (or a ValueError subclass such as RigError, converted by the
    command) with a message that names what is wrong; never a traceback.
    """

    exit_code = 2
