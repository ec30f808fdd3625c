"""Talking to running workflows from outside (issue 17): functions taking a Client, to which
Client and App delegate in one line each. Imports the runtime and storage, never the sdk; the
runtime never imports this package.

Modules, each importing only those listed before it:

- `_external`  completing and failing external waits (ctx.wait_external) by token; listing
               a run's external waits (never their tokens).
"""
