"""Errors the stores raise instead of botocore's."""


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class StaleWrite(StoreError):
    """Someone else moved the job first (version changed): reload and decide again, or no-op."""


class IllegalTransition(StoreError):
    pass


class BadCursor(StoreError):
    """A listing's cursor that this store never handed out (forged, or from another listing or tenant)."""
