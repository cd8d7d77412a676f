"""A network between client and server, on loopback: a TCP proxy that delays every byte by
a fixed time each way and counts round trips (used by bench/run.py's network section).

On 127.0.0.1 a round trip costs tens of microseconds, so a tool that waits for an answer
after every statement (psql) loses nothing by it. Against a hosted database (Supabase from
a CI runner) each wait costs the network's round-trip time: 1-2 ms within a region, tens of
ms across one. The proxy adds ``delay`` seconds to each direction, as a network would.

A round trip is counted when the client sends after the server has answered: psql running
one statement is one; a message that holds many statements (guard's stream) is one.
Connection start-up counts too (the startup message, then authentication). The count does
not depend on the machine's speed, so it can be compared across runs and machines.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class Counts:
    """What the proxy saw since it started (or since ``reset``)."""

    connections: int = 0
    round_trips: int = 0


class DelayProxy:
    """Listen on 127.0.0.1:``port`` (chosen free) and forward each connection to
    ``upstream`` (host, port), every chunk ``delay`` seconds late, order kept. A thread runs
    its event loop; ``close()`` stops it."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the delay proxy did not start")

    def reset(self) -> Counts:
        """The counts so far, then zero."""
        with self._lock:
            counts, self.counts = self.counts, Counts()
        return counts

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, family=socket.AF_INET))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        with self._lock:
            self.counts.connections += 1
        turn = {"last": "server"}  # who sent last: a client send after the server's is a round trip
        try:
            await asyncio.gather(self._pump(client_r, server_w, turn, "client"),
                                 self._pump(server_r, client_w, turn, "server"))
        except asyncio.CancelledError:  # close(): the connection ends with the proxy
            for writer in (client_w, server_w):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    turn: dict[str, str], side: str) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            try:
                writer.close()
            except OSError:
                pass

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(1 << 16)
                if side == "client" and data and turn["last"] == "server":
                    with self._lock:
                        self.counts.round_trips += 1
                if data:
                    turn["last"] = side
                queue.put_nowait((self._loop.time() + self.delay, data))
                if not data:
                    break
        except (ConnectionError, OSError):
            queue.put_nowait((self._loop.time(), b""))
        await sender

    def close(self) -> None:
        """Stop listening, end every connection's tasks, stop the thread."""
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self._loop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


# ------------------------------------------------------------------------------ the section

DELAY_MS = 1.0  # each way: a 2 ms round trip, as within one cloud region


def section(bench: Any, Stats: Any, ratio: Any, BenchError: Any, version_base: int) -> tuple[Any, ...]:
    """bench/run.py's "network" section: psql's script and `guard run` for each file count,
    through a DelayProxy of DELAY_MS each way; milliseconds and round trips, interleaved,
    a fresh database each. (title, intro, tables, notes) for run.py's Section; before/after
    pairs go to ``bench.pairs`` with ``--baseline``. run.py's Stats, ratio and BenchError
    are passed in (run.py runs as __main__)."""
    from psycopg.conninfo import make_conninfo

    upstream = bench.cluster.url("postgres")
    info = _host_port(upstream)
    proxy = DelayProxy(info, DELAY_MS / 1000)
    rows: list[list[str]] = []
    try:
        def through(url: str) -> str:
            return make_conninfo(url, host="127.0.0.1", hostaddr="127.0.0.1", port=str(proxy.port), sslmode="disable")

        trip_ms = measured_round_trip(through(upstream))

        def once(run: Any, template: str | None, count: int) -> tuple[Any, int]:
            name, url = bench.fresh_db(template)
            proxy.reset()
            sample = run(through(url))
            trips = proxy.reset().round_trips
            if bench.history_count(url) != count:
                raise BenchError(f"through the delay proxy, {bench.history_count(url)} of {count} files applied")
            bench.drop_db(name)
            return sample, trips

        for count in bench.file_counts:
            files = {f"{version_base + i}_f{i}.sql": f"create table public.t{i} (id int);\n" for i in range(count)}
            root = bench.project(files)
            script = bench.psql_script(root)
            psql, guard, base = Stats(), Stats(), Stats()
            trips: dict[str, int] = {}
            for _ in range(min(bench.runs, 3)):
                sample, trips["psql"] = once(lambda u, s=script: bench.run_psql_script(s, u), None, count)
                psql.add(sample)
                sample, trips["guard"] = once(lambda u, r=root: bench.run_guard(r, u), "bench_guard_template", count)
                guard.add(sample)
                if bench.baseline is not None:
                    sample, trips["base"] = once(lambda u, r=root: bench.run_guard(r, u, code=bench.baseline),
                                                 "bench_guard_template", count)
                    base.add(sample)
            rows.append([f"{count:,}", f"{psql.ms:.0f}", str(trips["psql"]), f"{guard.ms:.0f} ({guard.spread()})",
                         str(trips["guard"]), ratio(guard.ms, psql.ms)])
            print(f"  {count} files over {2 * DELAY_MS:g} ms round trips: psql {psql.ms:.0f} ms "
                  f"({trips['psql']} round trips), guard {guard.ms:.0f} ms ({trips['guard']})")
            if bench.baseline is not None:
                label = f"{count:,} file" + ("s" if count != 1 else "")
                bench.pairs.append((f"{label} over a {2 * DELAY_MS:g} ms round trip: guard round trips (psql: "
                                    f"{trips['psql']})", str(trips["base"]), str(trips["guard"])))
                bench.pairs.append((f"{label} over a {2 * DELAY_MS:g} ms round trip: guard / psql",
                                    f"{ratio(base.ms, psql.ms)} ({base.ms:.0f} vs {psql.ms:.0f} ms)",
                                    f"{ratio(guard.ms, psql.ms)} ({guard.ms:.0f} vs {psql.ms:.0f} ms)"))
    finally:
        proxy.close()
    return (
        "Over a network",
        [f"The many-files runs again, with every byte between client and server {DELAY_MS:g} ms late each way "
         f"(a {2 * DELAY_MS:g} ms round trip, as between a CI runner and a database in the same cloud region; "
         "across regions it is tens of ms): a TCP proxy on loopback (bench/network.py) that also counts round "
         f"trips, the times the client sent after the server answered. Median of {min(bench.runs, 3)}, "
         "psql and guard interleaved, a fresh database each; psql runs the same script as above. "
         "On loopback a round trip costs almost nothing; here each one costs the network's latency. The "
         f"round-trip counts do not depend on the machine's speed. Measured through the proxy: `SELECT 1` "
         f"takes {trip_ms:.1f} ms (median of 30)."],
        [(["files", "psql ms (reference)", "psql round trips", "guard ms (min–max)", "guard round trips",
           "guard / psql"], rows)],
        [])


def measured_round_trip(url: str, times: int = 30) -> float:
    """Median milliseconds of `SELECT 1` on one connection to ``url`` (the proxy's real round
    trip: the event loop's timers add a little to DELAY_MS each way)."""
    import statistics
    import time

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        samples = []
        for _ in range(times):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _host_port(url: str) -> tuple[str, int]:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    host = str(info.get("hostaddr") or info.get("host") or "127.0.0.1")
    return host, int(str(info.get("port") or 5432))
