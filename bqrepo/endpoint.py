"""Read an endpoint given as ``host:port`` or ``scheme://host:port`` (``BIGQUERY_EMULATOR_HOST``).

Why one parser: the settings validate the value, :mod:`bqrepo.redact` shows
it, and the engine connects to it. Three readings of the same string would
sooner or later disagree on what a bare ``host:port`` means (plain HTTP
here, as google-cloud-bigquery reads it) or on a port that is not a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Endpoint", "parse_endpoint"]


@dataclass(frozen=True)
class Endpoint:
    """The parts of an endpoint; ``port`` is ``None`` when missing or not a number."""

    #: The value as given.
    value: str
    scheme: str
    hostname: str
    port: int | None
    #: Whether the value carries ``user[:password]@``.
    has_userinfo: bool
    #: Whether the value names its scheme (``http://...``) rather than being a bare ``host:port``.
    explicit_scheme: bool

    @property
    def url(self) -> str:
        """The value as a URL: a bare ``host:port`` is plain HTTP."""
        return self.value if self.explicit_scheme else f"http://{self.value}"


def parse_endpoint(value: str) -> Endpoint:
    """``value`` split into its parts; never raises (the settings validate)."""
    explicit = "://" in value
    parts = urlsplit(value if explicit else f"http://{value}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return Endpoint(
        value=value,
        scheme=parts.scheme,
        hostname=parts.hostname or "",
        port=port,
        has_userinfo="@" in parts.netloc,
        explicit_scheme=explicit,
    )
