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
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TLS: the server's certificate (PEM); with --keyfile the service speaks HTTPS.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TLS: the certificate's private key (PEM).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="The request log's level.")
@pass_app
@handle_errors
def serve_command(app: AppContext, host: str, port: int, node: str, peers: dict[str, str], certfile: str | None,
                  keyfile: str | None, log_level: str) -> None:
    """Run the network service (HTTP, /api/v1, docs at /api/docs) over the world until stopped."""
    import errno
    import logging
    import socket
    import sys

    import uvicorn

    from sbcard.api.app import create_app
    from sbcard.domain.errors import InvalidInput
    from sbcard.api.config import ServiceConfig
    from sbcard.store.world import open_world

    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together", click.get_current_context())
    config = ServiceConfig(home=app.home, node=node, clock=app.clock, peers=peers)
    # refuse a missing world before listening, upgrade an old one: only the databases this process serves
    with open_world(app.home, app.clock, nodes=None if config.whole else config.served):
        pass
    logging.basicConfig(level=getattr(logging, log_level.upper()), format="%(asctime)s %(name)s %(message)s")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (socket.gaierror, UnicodeError, ValueError) as exc:  # not an address or a name this machine knows
        sock.close()
        raise InvalidInput("serve.host", f"{host!r} is not an address to listen on ({exc})", "--host") from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:  # an address, but none of this machine's
            raise InvalidInput("serve.host", f"{host!r} is not an address of this machine", "--host") from None
        raise
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    scheme = "https" if certfile else "http"
    click.echo(f"sbcard serving {node} at {scheme}://{shown}:{bound} (API docs: {scheme}://{shown}:{bound}/api/docs)")
    sys.stdout.flush()
    server = _server_class(uvicorn)(uvicorn.Config(create_app(config), log_level=log_level, access_log=False,
                                                   lifespan="on", timeout_graceful_shutdown=10,
                                                   ssl_certfile=certfile, ssl_keyfile=keyfile))
    server.run(sockets=[sock])
    click.echo("sbcard stopped", err=True)


def _server_class(uvicorn):  # type: ignore[no-untyped-def]
    """uvicorn's server, except that SIGTERM or Ctrl-C ends the process with exit 0 after the graceful shutdown.

    uvicorn raises the signal again once it has shut down, so the process would die of it
    (exit -15): a service stopped as asked has not failed.
    """
    import contextlib
    import signal

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def, override]
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server
