"""The request options both clients take, checked once."""

from tfcvr.export.signatures import PREDICT, SERVING_DEFAULT


def check_request_options(
    model_name: str | None,
    signature_name: str,
    version: int | None,
    version_label: str | None,
    timeout: float,
) -> None:
    """Raises ValueError naming the argument when a client option is invalid."""
    if not model_name:
        raise ValueError("`model_name` is required.")
    if signature_name not in (SERVING_DEFAULT, PREDICT):
        raise ValueError(f"`signature_name` must be {SERVING_DEFAULT!r} or {PREDICT!r}. Received: {signature_name!r}")
    if version is not None and version_label is not None:
        raise ValueError("Give `version` or `version_label`, not both.")
    if timeout <= 0:
        raise ValueError(f"`timeout` must be positive seconds. Received: {timeout}")
