"""The one error type the clients raise."""


class ServingError(Exception):
    """A prediction request failed.

    Attributes:
      code: the gRPC status name ("INVALID_ARGUMENT", "UNAVAILABLE",
        "DEADLINE_EXCEEDED", "NOT_FOUND", ...); REST errors are mapped to the
        same names from their HTTP status.
      attempts: how many times the request was sent.
    """

    def __init__(self, code: str, message: str, attempts: int = 1):
        super().__init__(f"{code}: {message}" + (f" (after {attempts} attempts)" if attempts > 1 else ""))
        self.code = code
        self.message = message
        self.attempts = attempts
