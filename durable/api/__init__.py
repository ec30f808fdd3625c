"""The HTTP API and web dashboard (`durable serve`): Litestar under uvicorn, over the engine."""

from durable.api._app import ApiOptions, create_app, end_streams
from durable.api._auth import TokenConfigError, Tokens, bind_problem, load_tokens
from durable.api._limits import MAX_JSON_DEPTH, json_depth
from durable.api._sameorigin import AllowedHosts, HostSyntaxError

__all__ = [
    "MAX_JSON_DEPTH",
    "AllowedHosts",
    "ApiOptions",
    "HostSyntaxError",
    "TokenConfigError",
    "Tokens",
    "bind_problem",
    "create_app",
    "end_streams",
    "json_depth",
    "load_tokens",
]
