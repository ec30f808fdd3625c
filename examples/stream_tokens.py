"""Streaming a step's tokens to readers while the run goes on.

    python examples/stream_tokens.py

The `answer` workflow runs two steps at once: `generate` writes each token of a (fake,
deterministic) model's reply to the run's stream "tokens" as it is produced, and `index` does
other work meanwhile. The script starts a run and prints the tokens as they arrive, through
app.read_stream(); any other process can read them too (`durable runs stream RUN tokens`,
or `curl -N -H 'Accept: text/event-stream' http://127.0.0.1:3000/executions/RUN/streams/tokens`
against `durable serve`).

Exactly once: a step's writes are numbered within the step call (0, 1, 2...), restarting at 0
on each attempt, and the store keeps the first value of each number. So if the worker dies (or
the step raises) after 10 tokens, the retried attempt produces the same tokens again, the first
10 are dropped, and readers see every token once, in order. A real model would not repeat
itself: such a step asks current_step().stream_resume("tokens") how many tokens were already
written and continues from there (see `generate`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import durable
from sdk import App, Context, current_step

HERE = Path(__file__).resolve().parent
app = App(f"sqlite:///{HERE / 'stream_tokens.db'}", poll_interval=0.2)

REPLY = (
    "Durable streams carry a run's progress to its readers as it happens: every token is "
    "written once, numbered, and read in order, even when the worker writing them dies "
    "halfway and another one takes the step over."
)
# Seconds between two tokens (the kill test slows the model down to land a SIGKILL mid-reply).
TOKEN_DELAY = float(os.environ.get("STREAM_TOKENS_DELAY", "0.02"))
# STREAM_TOKENS_RESUME=0: a retry writes every token again and the stored ones are dropped
# (the kill test checks both ways give each token once).
RESUME = os.environ.get("STREAM_TOKENS_RESUME", "1") != "0"


def fake_model(prompt: str) -> Iterator[str]:
    """A deterministic stand-in for a model's streamed reply: the same prompt, the same tokens."""
    for word in f"({prompt}) {REPLY}".split(" "):
        yield word + " "


def tokens_for(prompt: str) -> list[str]:
    return list(fake_model(prompt))


@app.step
async def generate(prompt: str) -> str:
    # Tokens earlier attempts of this call wrote: 0 on a first attempt. This model repeats
    # itself, so rewriting them is harmless (they are dropped); skipping them saves the work,
    # and is what a non-deterministic model must do.
    done = current_step().stream_resume("tokens") if RESUME else 0
    tokens = tokens_for(prompt)
    for token in tokens[done:]:
        await asyncio.sleep(TOKEN_DELAY)
        durable.write_stream("tokens", token)
    durable.close_stream("tokens")
    return "".join(tokens).strip()


@app.step
async def index(prompt: str) -> int:
    await asyncio.sleep(TOKEN_DELAY * 5)  # other work, at the same time as the generation
    return len(prompt)


@app.workflow(name="answer")
async def answer(ctx: Context, prompt: str) -> dict[str, object]:
    ctx.write_stream("status", "generating")  # workflow code may write too (recorded once)
    text, indexed = await asyncio.gather(generate(prompt), index(prompt))
    ctx.write_stream("status", "done")
    ctx.close_stream("status")
    return {"text": text, "indexed": indexed}


async def main() -> None:
    async with app:
        handle = await app.start("answer", "what is a stream?")
        async for token in app.read_stream(handle.run_id, "tokens"):
            print(token, end="", flush=True)
        print()
        print(await handle.result(timeout=60))


if __name__ == "__main__":
    asyncio.run(main())
