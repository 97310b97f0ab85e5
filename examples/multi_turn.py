"""A live multi-turn session: each line you type is a turn; the reply streams as it comes.

    python examples/multi_turn.py --mock                  # the scripted mock provider
    python examples/multi_turn.py --provider anthropic    # the worker needs ANTHROPIC_API_KEY
    printf 'Hello\\nWhat did I say?\\n' | python examples/multi_turn.py --mock

Needs a running server and worker (``asm dev``) and its settings in the environment (see
``_connect.py``). End with an empty line or Ctrl-D: the session is completed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from _connect import connect

from agent_session_manager import Reset


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="mock", help="mock, anthropic, codex, claude-code")
    parser.add_argument("--mock", action="store_true", help="use the mock provider")
    parser.add_argument("--model", help="the provider's model (default: its own)")
    parser.add_argument("--system", default="You are a concise, friendly assistant.")
    args = parser.parse_args()
    provider = "mock" if args.mock else args.provider

    client = await connect()
    try:
        view = await client.start_session(
            agent_id="examples-multi-turn",
            provider=provider,
            model=args.model,
            system_prompt=args.system,
        )
        sid = view.session_id
        print(f"session {sid} ({provider}); an empty line ends it", file=sys.stderr)
        failed = 0
        while True:
            print("you> ", end="", flush=True, file=sys.stderr)
            prompt = sys.stdin.readline().strip()
            if not prompt:
                break
            ref = await client.submit_run(sid, prompt)
            print("agent> ", end="", flush=True)
            async for piece in client.stream_text(sid, ref.run_id):
                if isinstance(piece, Reset):  # a retry: what was printed is void
                    print(f"\n[attempt {piece.attempt} starts over] ", end="", flush=True)
                else:  # the answer (thinking pieces come only with thinking=True)
                    print(piece.text, end="", flush=True)
            result = await client.wait_run(ref.run_id, sid)
            print(f"\n[{result.status.value}, {result.usage.total_tokens} tokens]")
            if result.error:
                failed += 1
                print(f"[{result.error['code']}: {result.error['message']}]", file=sys.stderr)
        final = await client.complete_session(sid, reason="conversation over")
        print(
            f"session {final.status.value}: {final.run_count} turns, "
            f"{final.usage.total_tokens} tokens"
        )
        return 1 if failed else 0
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
