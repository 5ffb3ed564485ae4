"""The network service (``sbcard serve``): an entry point over the same use cases as the CLI.

FastAPI over uvicorn. The routes translate HTTP to calls of ``sbcard.services`` and back;
the services never learn about HTTP (``.importlinter``). Every state change is done by the
signed-in operator of the session (``sbcard.api.auth``) or by a terminal proven by its
credential, never by a name in the request body. See ``docs/service.md``.
"""
