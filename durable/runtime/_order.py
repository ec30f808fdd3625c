"""Recorded outcomes are handed back in the order they were recorded.

A command takes its position when it is called, so which position a command gets depends on
the order in which the workflow's tasks resume. Live, a task resumes when what it awaits
completes: with asyncio.gather over chains of steps, the chain whose first step finished first
calls its second step first. The log records that order (each outcome's seq). A replay has
every outcome at hand at once; handed back at once, the first chain would run to its end before
the second began, take the positions the second had taken live, and get its results.

So during a replay an outcome is released only when every outcome recorded before it has been:
a task awaiting a later one waits (a future) until the earlier ones were taken. A sequential
workflow always awaits the next one: it never waits (the fast path, no suspension). Releasing
several at once is safe: the released tasks resume in the order their futures were resolved,
the order of the log, and each runs until it blocks, as it did live.

Two more rules keep a replay on the live path (settle, after_recorded): an outcome taken at
once is handed back only after the other ready tasks ran until they blocked, as they did live
while the command ran; and an outcome produced live during a replay (a step the crash
interrupted, run again) waits until every recorded outcome has been taken: it is newer.

What the order keys: a step's final outcome (StepCompleted, a final StepFailed), a wait's end
(TimerFired, WaitCompleted, ChildCompleted, CommandCancelled), a child run's start
(ChildStarted: the starting task resumed once it was recorded), and an update's acceptance
(UpdateAccepted: its handler started in that turn, see _updates) and its end
(UpdateCompleted). If the workflow stops asking
for the next outcome (code that awaits something else first, e.g. asyncio.sleep in workflow
code), the order gives way after a few quiet loop iterations rather than hold the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from durable._state import RunState

# Loop iterations without any movement before a waiting outcome is released out of order.
QUIET_LOOKS = 3
BUSY_LOOK_DELAY = 0.05  # seconds between looks while live steps run


# Loop iterations a recorded outcome taken at once may wait for the other ready tasks (settle).
SETTLE_LOOKS = 4
# Loop iterations the tasks waiting for the next outcome may wait for the commands recorded
# before it to be taken (a bound: code that changed must not hold the replay).
HELD_LOOKS = 50


def done_key(pos: int) -> int:
    """The key of the outcome (a step's, a wait's end) at `pos`."""
    return 2 * pos + 1


def start_key(pos: int) -> int:
    """The key of a child run's start at `pos`."""
    return 2 * pos


class ReplayOrder:
    def __init__(self, state: RunState, busy: Callable[[], bool]) -> None:
        self._seqs, self._order = _recorded_order(state)
        # For each outcome, the positions the replay must have taken before the tasks waiting
        # for it resume: those of every command recorded before it (see _release_held). Only
        # a task that waits for a later outcome needs them (a sequential replay never does):
        # computed then, from the outcomes' seqs and the state's first_seq (the commands
        # recorded since are newer than every outcome: they change nothing).
        self._first_seq = state.first_seq
        self._needs: list[int] | None = None
        self._index = {key: i for i, key in enumerate(self._order)}
        self._next = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._after: list[asyncio.Future[None]] = []  # live outcomes waiting for the end
        self.settling = 0  # tasks in settle(): a cancel waits for them (see _watch)
        self._busy = busy  # live steps are running: the order may be waiting for them
        self._seen = -1
        self._quiet = 0
        self._looking = False
        self.gave_way = 0  # outcomes released out of order (the code stopped asking in order)
        # Bumped whenever turn() suspends its task: a caller seeing it unchanged knows no
        # other code ran meanwhile (what it checked before the turn still holds).
        self.pauses = 0
        # The positions the run's commands have taken (set by the executor): see _release_held.
        self.positions_used: Callable[[], int] | None = None

    @property
    def active(self) -> bool:
        return self._next < len(self._order)

    def is_next(self, key: int) -> bool:
        """Whether `key` is the next recorded outcome to take (or none is left)."""
        return self._next >= len(self._order) or self._index.get(key, -1) <= self._next

    def take_now(self, key: int) -> bool:
        """turn()'s fast path, without a coroutine: when no task waits (for a later outcome,
        for the end of the replay, in settle()) and the loop has nothing else ready, an outcome
        that may be taken is taken at once and True returned; else False, and the caller
        awaits turn(key). A sequential replay takes every outcome here."""
        if self._waiting or self._after or self.settling:
            return False
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        if ready is None or ready:
            return False
        return self.ready(key, hold=True)

    def ready(self, key: int, *, hold: bool = False) -> bool:
        """Whether the outcome `key` may be taken now; if so, it is taken (no suspension).
        `hold`: the tasks waiting for the next outcomes are not released yet (the caller
        releases them: see turn)."""
        if self._next >= len(self._order):
            return True
        i = self._index.get(key)
        if i is None or i < self._next:
            return True  # not a recorded outcome, or already released
        if i == self._next:
            if hold:
                self._next += 1
            else:
                self._advance()
            return True
        return False

    async def turn(self, key: int) -> None:
        """Return once every outcome recorded before `key` has been taken."""
        self.settling += 1  # live outcomes wait until this one is handed back (see settle)
        try:
            if self.ready(key, hold=True):
                try:
                    # settle()'s first look, without creating its coroutine: a sequential
                    # replay alone on its loop has nothing else ready at each of its steps.
                    ready = getattr(asyncio.get_running_loop(), "_ready", None)
                    if ready is None or ready:
                        self.pauses += 1  # settle() lets the other ready code run
                        await self.settle()
                finally:
                    # The tasks already waiting for the next outcomes resume only once this
                    # one's task has gone on until it blocks: live, their outcomes came after
                    # what it did next (a task that awaited a later outcome early, a gathered
                    # branch or an update's handler, must not take its positions first).
                    if self._waiting:  # (a sequential replay never has any: no callback)
                        asyncio.get_running_loop().call_soon(self._release_held)
                return
            self.pauses += 1
        finally:
            self.settling -= 1
            self._release_after_if_done()
        fut = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        self._look_soon()
        try:
            await fut
        finally:
            if self._waiting.get(key) is fut:
                del self._waiting[key]

    async def settle(self) -> None:
        """Live, a command's outcome never comes back at once: a step takes at least the
        commit of its start, a wait its timer or signal. Meanwhile the workflow's other tasks
        that were ready ran until they blocked, taking the positions of the commands they
        issued. A replay has the outcome at hand; handed back without a pause, its task would
        run on and take those positions itself (`gather(chain(a), chain(b))` where a chain is
        a step then ctx.now(): a's now() took b's step's position). So the outcome comes back
        once the loop has nothing else ready (a few iterations at most: other runs share the
        loop). A sequential replay alone on its loop does not pause at all. A cancellation is
        not delivered in these pauses (_watch waits): live, it would have reached the command
        the workflow awaits next, and that is where it is recorded. Called by turn(), which
        counts the task in `settling` meanwhile."""
        loop = asyncio.get_running_loop()
        for _ in range(SETTLE_LOOKS):
            ready = getattr(loop, "_ready", None)  # CPython's queue of ready callbacks
            if ready is not None and not ready:
                return
            self.pauses += 1
            await asyncio.sleep(0)

    def _release_after_if_done(self) -> None:
        if self._after and not self.active and not self.settling:
            self._release_after()

    async def after_recorded(self) -> None:
        """Return once every recorded outcome has been taken. A live outcome during a replay
        (a step the crash interrupted, run again) is newer than all of them: handed back at
        once, its task would go on and take positions other tasks' recorded commands hold,
        and get their results (a step of the same name: no divergence to see, the wrong
        value). So it waits; if nobody asks for the next recorded outcome, the order gives
        way as it does for recorded ones."""
        if not self.active and not self.settling:
            return
        fut = asyncio.get_running_loop().create_future()
        self._after.append(fut)
        self._look_soon()
        await fut

    def _advance(self) -> None:
        self._next += 1
        self._release_waiting()

    def _release_held(self, looks: int = 0) -> None:
        """After a turn's task went on until it blocked (see turn), and the commands the log
        recorded before the next outcome were taken (the positions before `_need`: a task
        that went on live before that outcome came, a gathered branch's end waking the task
        that gathered it, takes them first), or after HELD_LOOKS loop iterations. Not while
        another task is taking an outcome: it releases them when it has gone on in turn."""
        if self.settling:
            return
        used = self.positions_used
        if (
            used is not None
            and looks < HELD_LOOKS
            and self._next < len(self._order)
            and self._order[self._next] in self._waiting
            and used() < self._need(self._next)
        ):
            asyncio.get_running_loop().call_soon(self._release_held, looks + 1)
            return
        self._release_waiting()

    def _need(self, index: int) -> int:
        if self._needs is None:
            self._needs = _needs(self._seqs, self._first_seq)
        return self._needs[index]

    def _release_waiting(self) -> None:
        # Outcomes already awaited are released in the log's order: their tasks resume in
        # that order, each running until it blocks, as they did live.
        while self._next < len(self._order):
            fut = self._waiting.pop(self._order[self._next], None)
            if fut is None:
                return
            if not fut.done():
                fut.set_result(None)
            self._next += 1
        self._release_after_if_done()

    def _release_after(self) -> None:
        after, self._after = self._after, []
        for fut in after:
            if not fut.done():
                fut.set_result(None)

    # -- giving way ----------------------------------------------------------------------

    def _look_soon(self) -> None:
        if not self._looking:
            self._looking = True
            asyncio.get_running_loop().call_soon(self._look)

    def _look(self) -> None:
        self._looking = False
        if self._next >= len(self._order):
            self._release_after_if_done()
            return
        if not self._waiting and not self._after:
            return
        if self.settling:  # a task about to ask for the next outcome (see settle)
            self._quiet = 0
            self._look_soon()
            return
        if self._busy():  # live steps run: what they lead to may be the next; look later
            self._seen, self._quiet = self._next, 0
            self._looking = True
            asyncio.get_running_loop().call_later(BUSY_LOOK_DELAY, self._look)
            return
        if self._next != self._seen:
            self._seen, self._quiet = self._next, 0
            self._look_soon()
            return
        self._quiet += 1
        if self._quiet < QUIET_LOOKS:
            self._look_soon()
            return
        if not self._waiting:  # only live outcomes wait, and nobody asks for the next one
            self.gave_way += len(self._order) - self._next
            self._next = len(self._order)
            self._release_after_if_done()
            return
        # Nobody asks for the next outcome: release the earliest one somebody waits for.
        first = min(self._waiting, key=self._index.__getitem__)
        self.gave_way += self._index[first] - self._next
        self._next = self._index[first]
        self._quiet = 0
        self._advance_from_waiting()
        self._look_soon()

    def _advance_from_waiting(self) -> None:
        fut = self._waiting.pop(self._order[self._next])
        if not fut.done():
            fut.set_result(None)
        self._advance()


def _recorded_order(state: RunState) -> tuple[list[int], list[int]]:
    """The seqs of the recorded outcomes, ascending, and their keys in that order (one event
    may end several waits, or start and end a child's: ties go by key, a start first).

    Mostly a dict of seq -> key, which the cyclic collector does not track (ints only): a
    (seq, key) tuple per outcome cost a long run's replay a collection pass every 700."""
    # A step's outcome is an event of its own: no two steps share a seq (done_key inlined:
    # this runs once per recorded step of a resumed run).
    by_seq = {s.done_seq: 2 * p + 1 for p, s in state.steps.items() if s.done_seq}
    tied: list[tuple[int, int]] = []

    def put(seq: int, key: int) -> None:
        if seq in by_seq:
            tied.append((seq, key))
        else:
            by_seq[seq] = key

    for pos, wait in state.waits.items():
        if wait.done_seq:
            put(wait.done_seq, done_key(pos))
        if wait.start_seq:
            put(wait.start_seq, start_key(pos))
    for update in state.updates.values():  # its handler starts and ends in its turns
        put(update.accept_seq, start_key(update.pos))
        if update.done_seq:
            put(update.done_seq, done_key(update.pos))
    if tied:
        pairs = sorted([*by_seq.items(), *tied])
        return [seq for seq, _ in pairs], [key for _, key in pairs]
    seqs = sorted(by_seq)
    return seqs, [by_seq[seq] for seq in seqs]


def _needs(seqs: list[int], first_seq: dict[int, int]) -> list[int]:
    """For each outcome's seq (ascending), one more than the highest position whose command
    was recorded before it (0: none)."""
    starts = sorted((seq, pos) for pos, seq in first_seq.items())
    needs: list[int] = []
    i, highest = 0, -1
    for seq in seqs:
        while i < len(starts) and starts[i][0] < seq:
            highest = max(highest, starts[i][1])
            i += 1
        needs.append(highest + 1)
    return needs
