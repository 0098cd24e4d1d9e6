"""Remove credentials from URLs, DSNs and messages before anything prints, logs or stores them.

Why by hand, and not only ``URL.render_as_string(hide_password=True)``:
SQLAlchemy hides the password of the authority part, but a password can
also travel in the query string (``?password=``, a form libpq and psycopg
accept), in a key-value DSN (``host=db password=...``), or in an authority
whose unencoded ``@`` makes every parser (SQLAlchemy's and libpq's) take the
password's tail for the host. The rules here are deliberately conservative:
everything before the *last* ``@`` ahead of a URL's query string is treated
as user information, and only the user name survives.
"""

from __future__ import annotations

import re

from bqrepo.endpoint import parse_endpoint

__all__ = ["SECRET", "display_host", "normalize_url", "redact_text", "redact_url"]

SECRET = "***"

# Connection parameters whose value is (or points at) a credential, in a
# URL's query string or a key-value DSN: libpq's password, sslpassword and
# passfile, and the BigQuery dialect's credentials in a URL.
_SECRET_KEYS = r"(?:password|passwd|pwd|sslpassword|passfile|sslkey|credentials_base64|credentials_path|access_token|token|secret|api_key)"
_QUERY_SECRET = re.compile(rf"([?&;]{_SECRET_KEYS}=)[^&;#\s]*", re.IGNORECASE)
# key = value in a libpq DSN; a value may be single-quoted with backslash escapes.
_DSN_SECRET = re.compile(rf"(\b{_SECRET_KEYS}\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s']*)", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")


def _split(url: str) -> tuple[str, str | None, str]:
    """``(scheme://, userinfo or None, rest)``.

    The user information is everything before the last ``@`` ahead of the
    query string: a password may hold ``@`` or ``/`` unencoded, a query
    value (``?password=a@b``) may hold ``@`` too. (A password with an
    unencoded ``?`` or ``#`` is not a URL any parser can read.)
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", None, url
    query = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, query)
    if at < 0:
        return scheme + sep, None, rest
    return scheme + sep, rest[:at], rest[at + 1 :]


def redact_url(url: str) -> str:
    """``url`` (a URL or a key-value DSN) with every credential replaced by ``***``.

    >>> redact_url("postgresql://me:p@ss@db/app?sslpassword=k")
    'postgresql://me:***@db/app?sslpassword=***'
    >>> redact_url("host=db user=me password='a b'")
    'host=db user=me password=***'
    """
    prefix, userinfo, rest = _split(url)
    if not prefix:
        return _DSN_SECRET.sub(rf"\g<1>{SECRET}", url)
    if userinfo is not None:
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}{':' + SECRET if colon else ''}@{rest}"
    return prefix + _QUERY_SECRET.sub(rf"\g<1>{SECRET}", rest)


def redact_text(text: str) -> str:
    """Any message with the credentials of every URL and DSN fragment in it replaced by ``***``."""
    pieces: list[str] = []
    done = 0
    for match in _URL.finditer(text):
        pieces += [_DSN_SECRET.sub(rf"\g<1>{SECRET}", text[done : match.start()]), redact_url(match.group(0))]
        done = match.end()
    pieces.append(_DSN_SECRET.sub(rf"\g<1>{SECRET}", text[done:]))
    return "".join(pieces)


def normalize_url(url: str) -> str:
    """``url`` with every ``@`` of its user information and query string percent-encoded.

    ``postgresql://me:p@ss@db/app`` means password ``p@ss`` on host ``db``,
    and ``?password=a@b`` means password ``a@b``; SQLAlchemy (and libpq, for
    the first) would read a host made of the password's tail instead, and
    connect to it and print it.
    """
    prefix, userinfo, rest = _split(url)
    if not prefix:
        return url
    query = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    rest = rest[:query] + rest[query:].replace("@", "%40")
    if userinfo is None:
        return prefix + rest
    return f"{prefix}{userinfo.replace('@', '%40')}@{rest}"


def display_host(host: str) -> str:
    """``[scheme://]host[:port]`` of an endpoint such as ``BIGQUERY_EMULATOR_HOST``, without user or password."""
    endpoint = parse_endpoint(host)
    port = endpoint.port
    shown = f"{endpoint.hostname}:{port}" if port is not None else endpoint.hostname
    return f"{endpoint.scheme}://{shown}" if endpoint.explicit_scheme else shown
