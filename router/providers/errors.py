"""One error tree for every provider. Callers look at `retryable`, never at a vendor's exception types.

    ProviderError                 not retryable unless a subclass says so
    ├── Rejected                  the provider refused this job (bad input, unsupported): try another offer
    │   └── InputRejected         the job's input file is refused (address, size, gone): the client's fault
    ├── AuthFailed                credentials wrong or missing: an operator must act
    ├── NotFound                  the provider has no such job
    └── TransientError            retryable: try the same call again later
        ├── RateLimited           429; `retry_after_s` when the provider said
        ├── Unavailable           unreachable, refused, 5xx before the job was accepted
        │   └── InputUnavailable  the job's input file couldn't be fetched just now: the client's host, not the provider
        └── OutcomeUnknown        a submit timed out or failed after sending: reconcile before any resubmit
"""

from __future__ import annotations


class ProviderError(Exception):
    retryable = False


class Rejected(ProviderError):
    pass


class InputRejected(Rejected):
    pass


class AuthFailed(ProviderError):
    pass


class NotFound(ProviderError):
    pass


class TransientError(ProviderError):
    retryable = True


class RateLimited(TransientError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(TransientError):
    pass


class InputUnavailable(Unavailable):
    pass


class OutcomeUnknown(TransientError):
    pass
