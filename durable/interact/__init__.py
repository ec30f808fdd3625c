"""Talking to running workflows from outside them: functions taking a Client (which delegates
to them), so the client stays small.

The modules, each importing only those listed before it:

- `_streams`   following a run's stream (app.read_stream / Client.read_stream), live.

Imports runtime and storage, never sdk, the API or the CLI (they use these through Client).
"""
