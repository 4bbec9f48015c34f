"""Run a piece of the Argilla server with the test search engine registered.

This script runs with the Python of the Argilla server's own virtualenv (``argilla-server==2.8.0``),
never the project's. It imports ``argilla_engine`` (next to it) before anything else of the server
starts, so that ``ARGILLA_SEARCH_ENGINE=database`` finds the engine. The settings come from the
server's usual ``ARGILLA_*`` environment variables (home path, database URL, Redis URL).

Usage::

    python argilla_launch.py setup USERS_JSON  # migrate the database, create users (known API keys)
    python argilla_launch.py serve HOST PORT   # the API server (uvicorn, one process)
    python argilla_launch.py worker            # the background job worker (rq, high + default)

``USERS_JSON`` is a list of ``{"username", "role", "api_key", "password", "workspaces"}`` objects.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys

# This folder also holds the test harness ``argilla_server.py``: take it off the import path so
# that ``argilla_server`` is the server package, then load the engine from its file.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
_spec = importlib.util.spec_from_file_location(
    "argilla_engine", os.path.join(HERE, "argilla_engine.py")
)
argilla_engine = importlib.util.module_from_spec(_spec)
sys.modules["argilla_engine"] = argilla_engine
_spec.loader.exec_module(argilla_engine)  # registers the "database" search engine


def setup(users_json: str) -> None:
    """Migrate the database to the newest revision and create the users (existing ones are kept)."""
    from argilla_server.cli.database.migrate import migrate_db
    from argilla_server.cli.database.users.create import _create
    from argilla_server.enums import UserRole

    migrate_db(revision="head")
    for user in json.loads(users_json):
        asyncio.run(
            _create(
                first_name=user["username"],
                username=user["username"],
                role=UserRole(user["role"]),
                password=user["password"],
                api_key=user["api_key"],
                workspace=list(user.get("workspaces", [])),
            )
        )


def serve(host: str, port: str) -> None:
    """The API server on ``host:port`` (no reload, one process)."""
    import uvicorn

    uvicorn.run("argilla_server:app", host=host, port=int(port), access_log=False)


def worker() -> None:
    """One rq worker on the server's queues (high first), as ``argilla_server worker`` runs them."""
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq import Worker

    Worker([HIGH_QUEUE, DEFAULT_QUEUE], connection=REDIS_CONNECTION).work(with_scheduler=False)


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["--help"]
    commands = {"setup": setup, "serve": serve, "worker": worker}
    if command not in commands:
        sys.exit(__doc__)
    commands[command](*args)
