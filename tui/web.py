"""``ncanvas web``: the dashboard in a browser (textual-serve), with sessions that end when their browser is gone.

textual-serve runs one ``python -m tui.cli`` session per websocket. As shipped, a session could outlive its
browser: a connection that drops without a close frame is only noticed by the websocket heartbeat (15 s), stopping
a session waits on the process forever, stopping the server left its sessions running (stdin at EOF, nobody reading
stdout, reparented to init), and the session was a grandchild behind ``sh -c``. Here:

- the session is ``exec``'d (no shell in between: its parent is the server);
- the heartbeat is :data:`HEARTBEAT_S`, so a silent browser is dropped within about that long;
- stopping a session asks it to quit, then terminates it, then kills it (:data:`QUIT_GRACE_S` each);
- shutting the server down stops every session first;
- and a session whose server vanished (SIGKILL, a crash) ends itself within a second or two
  (:meth:`tui.app.NcanvasApp.check_server`).

Imported only by the ``web`` command: textual-serve is an optional dependency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

HEARTBEAT_S = 5.0  # ping the browser this often; no pong within half of it closes the connection
QUIT_GRACE_S = 3.0  # after "quit", then after SIGTERM, before the next step

log = logging.getLogger("ncanvas-web")


class Session(AppService):
    """One dashboard process; :meth:`stop` is bounded."""

    async def stop(self) -> None:
        if self._task is None:
            return
        task, self._task = self._task, None
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        try:
            await self.send_meta({"type": "quit"})
        except Exception:  # noqa: BLE001 - its stdin may already be gone
            pass
        proc = self._process
        for step in ("quit", "terminate", "kill"):
            if step != "quit" and proc is not None and proc.returncode is None:
                getattr(proc, step)()
            try:
                await asyncio.wait_for(asyncio.shield(task), QUIT_GRACE_S)
                break
            except asyncio.TimeoutError:
                log.warning("session %s did not end after %s; next: %s", self.app_service_id, step,
                            {"quit": "SIGTERM", "terminate": "SIGKILL", "kill": "giving up"}[step])
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), QUIT_GRACE_S)
            except asyncio.TimeoutError:
                pass


def _closer(websocket: web.WebSocketResponse) -> Callable[[], Awaitable[None]]:
    """``websocket.close`` as a session's ``close`` callback wants it (the bool it returns dropped)."""

    async def close() -> None:
        await websocket.close()

    return close


class DashboardServer(Server):
    """textual-serve's server with :class:`Session` processes, a short heartbeat and sessions stopped first on
    shutdown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: set[Session] = set()

    async def on_shutdown(self, app: web.Application) -> None:
        await asyncio.gather(*(s.stop() for s in list(self.sessions)), return_exceptions=True)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        session: Session | None = None
        try:
            await websocket.prepare(request)
            session = Session(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                              close=_closer(websocket), download_manager=self.download_manager, debug=self.debug)
            self.sessions.add(session)
            await session.start(width, height)
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # noqa: BLE001 - one browser's failure must not stop the server
            log.exception(error)
        finally:
            if session is not None:
                await session.stop()
                self.sessions.discard(session)
        return websocket
