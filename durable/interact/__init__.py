"""Talking to running workflows from outside (issue 17): functions taking a Client, which
delegates to them in one line each. The modules, in import order:

- `_updates`   app.update / app.update_with_start: requests answered by a workflow's handler
               (ctx.on_update), exactly once per update id; reading them back.
"""
