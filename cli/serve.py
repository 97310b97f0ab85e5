"""``asm serve``: the HTTP/SSE gateway and its web view (the ``gateway`` extra).

The gateway is imported only here and only when the command runs, so ``asm`` works in an
install without FastAPI and uvicorn.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from agent_session_manager.cli.options import current, shared
from agent_session_manager.cli.output import err
from agent_session_manager.cli.runtime import runtime
from agent_session_manager.core.errors import error


@shared()
def serve(
    host: Annotated[
        str | None, typer.Option(help="interface (default 127.0.0.1; ASM_GATEWAY_HOST)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="port (default 8780; ASM_GATEWAY_PORT)")
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="a browser origin allowed to call the API (repeat)"),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="requests per second per key")
    ] = None,
    burst: Annotated[int | None, typer.Option(min=1, help="request burst per key")] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(min=1024, help="largest request body")
    ] = None,
) -> None:
    """Serve sessions, runs and live events over HTTP/SSE, and the web view at /ui/.

    Needs a Temporal server (--address, ASM_TEMPORAL_ADDRESS or the project's `asm dev`) and
    the event store (ASM_DATABASE_URL or the project's); -o json prints {"url", "ui"} once
    listening. Several gateways can serve one deployment. Keys: `asm keys create`.
    """
    try:
        import uvicorn

        from agent_session_manager.gateway import GatewaySettings, create_app
    except ImportError as exc:
        raise error(
            "capability_not_supported",
            f"the gateway needs its extra: pip install 'agent-session-manager[gateway]' ({exc})",
        ) from None
    overrides = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "cors_origins": cors_origin,
            "rate_per_second": rate,
            "rate_burst": burst,
            "max_body_bytes": max_body_bytes,
        }.items()
        if v is not None
    }
    settings = GatewaySettings(**overrides)  # type: ignore[arg-type]

    async def main() -> None:
        async with runtime(with_store=True) as rt:
            if rt.store is None:  # with_store=True opens one
                raise error("internal_error", "the gateway needs the event store")
            app = create_app(rt.client, rt.store, settings)
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            server = uvicorn.Server(config)

            async def announce() -> None:
                # uvicorn says it is listening only through this flag.
                while not server.started:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                bound = server.servers[0].sockets[0].getsockname()
                url = f"http://{bound[0]}:{bound[1]}"
                if current.json:
                    print(json.dumps({"url": url, "ui": f"{url}/ui/"}), flush=True)
                else:
                    print(url, flush=True)
                    err.print(f"web view {url}/ui/ · API {url}/docs", highlight=False)

            announcer = asyncio.create_task(announce())
            try:
                await server.serve()
            finally:
                announcer.cancel()

    asyncio.run(main())
