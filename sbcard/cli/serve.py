"""``sbcard serve``: the network service over a world, until stopped (SIGTERM or Ctrl-C)."""

from __future__ import annotations

import click

from sbcard.cli.context import AppContext, handle_errors, pass_app

NODE_CHOICES = ("all", "bj", "tj", "he", "hub")


def _peer(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    peers: dict[str, str] = {}
    for value in values:
        node, sep, url = value.partition("=")
        if not sep or node not in NODE_CHOICES[1:] or not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{value!r} is not NODE=URL (NODE one of bj, tj, he, hub)")
        peers[node] = url.rstrip("/")
    return peers


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="The port (0: a free one, printed).")
@click.option("--node", default="all", show_default=True, type=click.Choice(NODE_CHOICES),
              help="Serve the three regions and the hub, or one node.")
@click.option("--peer", "peers", multiple=True, callback=_peer, metavar="NODE=URL",
              help="Where another node's process listens (one node per process).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="The request log's level.")
@pass_app
@handle_errors
def serve_command(app: AppContext, host: str, port: int, node: str, peers: dict[str, str], log_level: str) -> None:
    """Run the network service (HTTP, /api/v1, docs at /api/docs) over the world until stopped."""
    import logging
    import socket

    import uvicorn

    from sbcard.api.app import create_app
    from sbcard.api.config import ServiceConfig
    from sbcard.store.world import open_world

    config = ServiceConfig(home=app.home, node=node, clock=app.clock, peers=peers)
    # refuse a missing world before listening, upgrade an old one: only the databases this process serves
    with open_world(app.home, app.clock, nodes=None if config.whole else config.served):
        pass
    logging.basicConfig(level=getattr(logging, log_level.upper()), format="%(asctime)s %(name)s %(message)s")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    click.echo(f"sbcard serving {node} at http://{shown}:{bound} (API docs: http://{shown}:{bound}/api/docs)", err=False)
    click.get_text_stream("stdout").flush()
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level=log_level, access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=10))
    server.run(sockets=[sock])
