"""The hot reads (alias, ``version@ref``, Hub model info, file resolves): where their query
runs, and their answer as JSON.

A hot read is one ``SELECT`` on a connection of its own, without an ORM session (the
slower lookups that name what is missing open one on that connection). On SQLite that
statement is a local call of well under a millisecond that never waits for a writer (WAL
mode: readers see their snapshot), so it runs on the event loop: handing it to the thread
pool and back cost more server CPU than the read itself (measured, ``bench/load.py``). On
PostgreSQL it is a network round trip and runs in the thread pool, so that the loop keeps
serving while it waits, in autocommit mode: no ``BEGIN`` and ``ROLLBACK`` round trips
around it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


class Reader:
    """Runs a hot read: ``await reader.run(read, *args)`` calls ``read(connection, *args)``."""

    def __init__(self, engine: Engine) -> None:
        self.on_loop = engine.dialect.name == "sqlite"
        # PostgreSQL: no BEGIN and ROLLBACK round trips around the statement. Reads see a
        # snapshot per statement either way (READ COMMITTED), so nothing else changes.
        self.engine = (
            engine if self.on_loop else engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    async def run(
        self, read: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if self.on_loop:
            return self._run(read, *args, **kwargs)
        return await run_in_threadpool(partial(self._run, read, *args, **kwargs))

    async def run_then(self, read: Callable[[Connection], T], then: Callable[[T], R]) -> R:
        """``then(read(connection))``, with ``then`` (blocking I/O: a file, an object store)
        in the thread pool: one thread hop on either database."""
        if self.on_loop:
            return await run_in_threadpool(then, self._run(read))
        return await run_in_threadpool(lambda: then(self._run(read)))

    def _run(
        self, read: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        with self.engine.connect() as connection:
            return read(connection, *args, **kwargs)


def json_response(model: BaseModel) -> Response:
    """``model`` as FastAPI would send it for a route whose ``response_model`` is its class
    (by alias, unset fields included), serialized once: returning the model instead makes
    FastAPI validate it again before serializing it."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")
