"""Database URLs as they may be shown: the one redaction rule of the package.

A storage URL may hold a password, and a URL the user mistyped may not parse at all (no
`:` after the scheme, an unencoded `@`, `:` or `/` in the password that pushes its tail
into the host or the port, `?password=` in the query). So the rule works on the text, not
on a parse: the password is what lies between the first `:` of the userinfo and the LAST
`@`; a port that is not a number and a query or fragment parameter whose name says
password, secret or token are secrets too. `redact(url)` shows a URL with those replaced
by `***`; `scrub(text)` does the same to any message (a driver's or SQLAlchemy's error, a
log line) for every URL this process has redacted, including the pieces of a password
that a misparse scattered into host or port. Every text derived from a storage URL goes
through one of these two before it is printed, logged, raised or stored.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote

MASK = "***"
MIN_PIECE = 3  # pieces of a password shorter than this are not hunted for in messages
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/{1,2}")  # "postgresql://", "x:/"
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;#][^=?&;#]*(?:pass|pwd|secret|token)[^=?&;#]*=)(?P<value>[^&;#]*)", re.I)
_DELIMITERS = re.compile(r"[@:/?#&;=\s]+")
_seen: set[str] = set()  # every secret of every URL redacted in this process
_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """PostgreSQL URLs use psycopg 3 (the driver installed); other URLs pass unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _split(url: str) -> tuple[str, str, str | None, str]:
    """(scheme part, user, password or None, rest after the last `@`); no `@`: user ''."""
    match = _SCHEME.match(url)
    head = url[:match.end()] if match else ""
    tail = url[len(head):]
    if "@" not in tail:
        return head, "", None, tail
    userinfo, rest = tail.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    return head, user, password if colon else None, rest


def _bad_port(rest: str) -> str | None:
    """A port that is not a number (after the host, before the path): nothing a server
    listens on, and the usual place for a password typed after the wrong `@` or `:`."""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority.startswith("["):  # an IPv6 host: [::1]:5432
        authority = authority.partition("]")[2]
    port = authority.rpartition(":")[2] if ":" in authority else ""
    return port if port and not port.isdigit() else None


def secrets(url: str) -> set[str]:
    """The password, a port that is not a number, and secret parameters of `url`: as
    written, percent-decoded, and the pieces between delimiters (an unencoded `@` or `:`
    sends a piece into host or port)."""
    _, _, password, rest = _split(url)
    found = {m["value"] for m in _SECRET_PARAM.finditer(url)}
    found.update(s for s in (password, _bad_port(rest)) if s is not None)
    pieces = set()
    for secret in found | {unquote(s) for s in found}:
        pieces.add(secret)
        pieces.update(_DELIMITERS.split(secret))
    return {p for p in pieces if len(p) >= MIN_PIECE}


def _mask(text: str, hidden: set[str]) -> str:
    for secret in sorted(hidden, key=len, reverse=True):  # longest first: pieces come last
        text = text.replace(secret, MASK)
    return text


def redact(url: str) -> str:
    """`url` as it may be shown: password and secret parameters replaced by ***, whether or
    not the URL parses. Remembers the secrets, so `scrub` can find them in later messages."""
    hidden = secrets(url)
    with _lock:
        _seen.update(hidden)
    head, user, password, rest = _split(url)
    port = _bad_port(rest)
    if port is not None:
        rest = rest.replace(f":{port}", f":{MASK}", 1)
    userinfo = f"{user}@" if user else ""
    if password is not None:
        userinfo = f"{user}:{MASK}@"
    shown = _SECRET_PARAM.sub(rf"\g<key>{MASK}", head + userinfo + rest)
    return _mask(shown, hidden - {MASK})


def scrub(text: str, url: str | None = None) -> str:
    """`text` (an error message, a log line) with `url` shown redacted and every secret of
    every URL redacted so far in this process replaced by ***."""
    if url is not None:
        shown_url = redact(url)
        text = text.replace(url, shown_url).replace(normalize_url(url), shown_url)
    with _lock:
        hidden = set(_seen)
    return _mask(text, hidden)


__all__ = ["normalize_url", "redact", "scrub", "secrets"]
