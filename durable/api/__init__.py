"""The HTTP API and web dashboard (`durable serve`): Litestar under uvicorn, over the engine."""

from durable.api._app import ApiOptions, create_app
from durable.api._auth import TokenConfigError, Tokens, bind_problem, load_tokens

__all__ = ["ApiOptions", "TokenConfigError", "Tokens", "bind_problem", "create_app", "load_tokens"]
