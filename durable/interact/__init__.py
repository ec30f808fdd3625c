"""Talking to runs from outside (issue 17): functions taking a Client, which delegates to them
in one line each (durable._client stays small).

The modules, each importing only those listed before it:

- `_values`    get_event / list_events: the values a run set with ctx.set_event, read from the
               values table; waiting with the in-process notifier, else polling with backoff.
- `_query`     answering app.query(): the run replayed in this process (nothing written), then
               its ctx.on_query handler called read-only (durable.runtime._guard).
- `_streams`   following a run's stream (app.read_stream / Client.read_stream), live.
- `_external`  completing and failing external waits (ctx.wait_external) by token; listing
               a run's external waits (never their tokens).

- `_updates`   app.update / app.update_with_start: requests answered by a workflow's handler
               (ctx.on_update), exactly once per update id; reading them back.

Layering: this package imports the runtime and storage, never sdk; the runtime never imports
it; the API and the CLI reach it through Client.
"""
