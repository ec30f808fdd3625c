"""What a PostgreSQL URL looks like, without loading the PostgreSQL store (asyncpg,
SQLAlchemy): enough to route a URL and to print one without its password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def mask_url(url: str) -> str:
    """The URL with any password (in the user info or the query) replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        url = url.replace(f":{password}@", ":***@", 1)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
