"""Connecting to MongoDB with bounded waits (shared by the mirror, the readers, the CLIs).

Every client iwx opens has short timeouts: a server that is down fails a call
in about 2 s, a hung one in 10 s, so no command ever waits on the database for
long. URLs look like ``mongodb://HOST:PORT/DB``; DB defaults to ``iwx``.
"""

from __future__ import annotations

import pymongo

DEFAULT_DB = "iwx"
TIMEOUTS = {"serverSelectionTimeoutMS": 2000, "connectTimeoutMS": 2000,
            "socketTimeoutMS": 10000}


def check_url(url: str) -> str | None:
    """None when ``url`` is a well-formed MongoDB URL, else what is wrong with it."""
    try:
        pymongo.uri_parser.parse_uri(url)
    except (pymongo.errors.InvalidURI, pymongo.errors.ConfigurationError, ValueError) as exc:
        return f"{url!r} is not a MongoDB URL ({exc}); expected mongodb://HOST:PORT/DB"
    return None


def database(url: str, timeout_ms: int | None = None):
    """(client, database) for ``url``; ``timeout_ms`` shortens every wait further."""
    options = dict(TIMEOUTS)
    if timeout_ms is not None:
        options = {name: min(value, timeout_ms) for name, value in options.items()}
    name = pymongo.uri_parser.parse_uri(url).get("database") or DEFAULT_DB
    client = pymongo.MongoClient(url, **options)
    return client, client[name]


def ping(url: str, timeout_ms: int = 2000) -> bool:
    """Whether a server answers ``ping`` at ``url`` within ``timeout_ms``."""
    client, _ = database(url, timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()
