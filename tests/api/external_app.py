"""The application of tests/api/test_api_external.py, served by `durable serve --app
external_app:app`: a payment workflow waiting for an external completion."""

import os

from sdk import App, Context, ExternalFailed

app = App(
    poll_interval=float(os.environ.get("POLL", "0.2")),
    lease_ttl=float(os.environ.get("LEASE_TTL", "5")),
)


@app.step()
def send_token(token: str) -> None:
    with open(os.environ["TOKENS"], "a") as out:  # the outside system gets the token
        out.write(token + "\n")


@app.workflow
async def pay(ctx: Context, timeout: float | None) -> dict[str, object]:
    wait = ctx.wait_external(timeout=timeout, name="payment")
    await send_token(wait.token)
    try:
        return {"paid": await wait, "token": wait.token}
    except TimeoutError:
        return {"timed_out": True, "token": wait.token}
    except ExternalFailed as exc:
        return {"failed": exc.error.message, "token": wait.token}
