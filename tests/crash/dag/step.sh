# One script step of the DAG crash test, sourced by `/bin/sh -c`. $DAG_CRASH_WORKER is the pid
# of the worker process that ran the step (dag_child.py sets it; the script's parent is the
# launcher that measures its resources, see durable/dag/_launcher.py). Environment, from the
# step's `environment`:
#   EFFECTS  the side-effect file;  NAME  the instance name (`id`, `id[i]`);
#   DELAY    seconds of "work";     IN    what the dependencies printed;  FAIL  the exit status.
# The side effect comes first, as one short O_APPEND write: a line is proof that the step ran in
# that worker, whether or not the worker lived to record it.
printf '%s %s\n' "$NAME" "$DAG_CRASH_WORKER" >> "$EFFECTS"
sleep "$DELAY"
# The result depends on the instance and on its dependencies' results, and on nothing else.
printf '%s=%s\n' "$NAME" "$(printf '%s|%s' "$NAME" "$IN" | cksum | cut -d' ' -f1)"
exit "${FAIL:-0}"
