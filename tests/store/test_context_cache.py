"""The conversation kept between turns (store._context_cache) reads what SQL holds.

Every read through a store that keeps snapshots must equal the policy applied to the runs the
session holds at that moment, whatever happened since its last read: runs saved (through it
or through another store, i.e. another worker), saved again, ended failed, rolled back, runs
sharing a turn, reads for older turns. The oracle is a plain model of the session in the test.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.core.contract import ContextPolicy, LifecycleRecord, Message
from agent_session_manager.store import EventStore
from tests.store.drafts import run_of

_EXCLUDED = {"failed", "cancelled", "timeout"}


@dataclass
class _Run:
    run_id: str
    turn: int
    messages: list[Message]
    status: str = "running"
    rolled_back: bool = False


@dataclass
class _Model:
    runs: list[_Run] = field(default_factory=list)

    def expected(self, before_turn: int, policy: ContextPolicy) -> list[Message]:
        counted = sorted(
            (
                r
                for r in self.runs
                if r.turn < before_turn and r.status not in _EXCLUDED and not r.rolled_back
            ),
            key=lambda r: (r.turn, r.run_id),
            reverse=True,
        )
        kept: list[_Run] = []
        n = chars = 0
        for run in counted:
            n += len(run.messages)
            chars += sum(len(str(m.content)) for m in run.messages)
            if n > policy.max_messages or chars > policy.max_chars:
                break
            kept.append(run)
        return [m for run in reversed(kept) for m in run.messages]


def _messages(count: int, size: int, tag: str) -> list[Message]:
    roles = ["user", "assistant"]
    return [
        Message(role=roles[i % 2], content=f"{tag}.{i}:" + "x" * size)  # type: ignore[arg-type]
        for i in range(count)
    ]


_op = st.one_of(
    st.tuples(
        st.just("new"), st.integers(0, 2), st.integers(1, 4), st.integers(0, 400), st.booleans()
    ),
    st.tuples(
        st.just("resave"), st.integers(0, 50), st.integers(0, 4), st.integers(0, 400), st.booleans()
    ),
    st.tuples(
        st.just("end"),
        st.integers(0, 50),
        st.sampled_from(["completed", "failed", "cancelled", "timeout"]),
        st.booleans(),
    ),
    st.tuples(st.just("rollback"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("read"), st.integers(0, 3), st.booleans()),
)


@settings(
    max_examples=40,
    deadline=None,
    # The stores are shared by the examples on purpose: each example has its own session.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.integers(2, 10),
    st.integers(1_000, 2_000),
    st.lists(_op, min_size=1, max_size=30),
)
async def test_every_read_equals_the_policy_over_what_the_session_holds_now(
    store: EventStore,
    other_store: EventStore,
    most: int,
    chars: int,
    ops: list[tuple[object, ...]],
) -> None:
    policy = ContextPolicy(max_messages=most, max_chars=chars)
    sid = f"s-{uuid.uuid4().hex[:12]}"
    model = _Model()
    top = 1
    for i, op in enumerate(ops):
        kind, *args = op
        via = other_store if args[-1] else store
        if kind == "new":
            step, count, size, _ = args
            assert isinstance(step, int) and isinstance(count, int) and isinstance(size, int)
            top += step
            run = _Run(run_of(sid, f"r{i:03d}"), top, _messages(count, size, f"n{i}"))
            model.runs.append(run)
            await via.save_messages(sid, run.run_id, run.turn, run.messages)
        elif kind == "read":
            back = args[0]
            assert isinstance(back, int)
            before = max(1, top + 1 - back)
            got = await via.conversation(sid, before_turn=before, policy=policy)
            assert got == model.expected(before, policy), (i, op)
        elif model.runs:
            index = args[0]
            assert isinstance(index, int)
            run = model.runs[index % len(model.runs)]
            if kind == "resave":
                count, size = args[1], args[2]
                assert isinstance(count, int) and isinstance(size, int)
                run.messages = _messages(count, size, f"s{i}")
                await via.save_messages(sid, run.run_id, run.turn, run.messages)
            elif kind == "end":
                status = args[1]
                assert isinstance(status, str)
                if run.status == "running":  # terminal states are final
                    run.status = status
                await via.record(
                    LifecycleRecord(
                        event_id=f"{run.run_id}/end/{i}",
                        session_id=sid,
                        run_id=run.run_id,
                        type=f"run_{status}",
                        run_status=status,
                    )
                )
            else:
                run.rolled_back = True
                await via.mark_rolled_back(run.run_id)
    for reader in (store, other_store):
        got = await reader.conversation(sid, before_turn=top + 1, policy=policy)
        assert got == model.expected(top + 1, policy)


async def test_a_run_rolled_back_inside_the_window_lets_an_older_one_in(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    policy = ContextPolicy(max_messages=4)
    runs = [run_of(sid, f"t{turn}") for turn in range(1, 5)]
    for turn, run in enumerate(runs, start=1):
        await store.save_messages(sid, run, turn, _messages(2, 0, f"t{turn}"))
    window = await store.conversation(sid, before_turn=5, policy=policy)
    assert window == _messages(2, 0, "t3") + _messages(2, 0, "t4")
    await other_store.mark_rolled_back(runs[3])  # another worker
    window = await store.conversation(sid, before_turn=5, policy=policy)
    assert window == _messages(2, 0, "t2") + _messages(2, 0, "t3")
