#!/usr/bin/env python3
"""A swarm of SSE watchers on one operation, for scripts/load.

Opens WATCHERS event streams (plain HTTP/1.1 over asyncio, on loopback) on
/api/v1/operations/OP/events?after=AFTER, reads them for SECONDS, and for
every event a watcher receives records the delay from the event's `at` (when
the console stored it) to its arrival. Prints one JSON object: watchers that
connected, refused (with the statuses), broken streams, events received per
watcher (min/max: every watcher must see every event), and the delay's
p50/p99/max in milliseconds.

Usage: sse-swarm.py URL TOKEN OP AFTER WATCHERS SECONDS
"""

import asyncio
import datetime
import json
import sys
import time
from urllib.parse import urlsplit


def at_seconds(text):
    # RFC 3339 with up to nanoseconds; Python takes microseconds.
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = rest[: next((i for i, c in enumerate(rest) if not c.isdigit()), len(rest))]
        text = head + "." + digits[:6].ljust(6, "0") + rest[len(digits):]
    return datetime.datetime.fromisoformat(text).timestamp()


async def watch(host, port, path, token, until, delays, counts, problems, index):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        problems.append(f"connect: {e}")
        return
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    received = 0
    try:
        status = await asyncio.wait_for(reader.readline(), timeout=max(1.0, until - time.time()))
        if b" 200 " not in status:
            problems.append(f"status: {status.decode(errors='replace').strip()}")
            return
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        while time.time() < until:
            line = await asyncio.wait_for(reader.readline(), timeout=max(0.1, until - time.time()))
            if not line:
                if time.time() < until - 0.5:
                    problems.append("stream ended early")
                break
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                delays.append(time.time() - at_seconds(event["at"]))
                received += 1
            # Anything else: the chunked encoding's size lines, id:, event:, keep-alives.
    except asyncio.TimeoutError:
        pass
    except (OSError, ValueError) as e:
        problems.append(f"stream: {e}")
    finally:
        counts[index] = received
        writer.close()


async def main():
    url, token, op, after, watchers, seconds = sys.argv[1:7]
    parts = urlsplit(url)
    path = f"/api/v1/operations/{op}/events?after={after}"
    until = time.time() + float(seconds)
    delays, problems = [], []
    counts = [0] * int(watchers)
    tasks = []
    for i in range(int(watchers)):
        tasks.append(asyncio.create_task(
            watch(parts.hostname, parts.port, path, token, until, delays, counts, problems, i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # connect in bursts, as tabs would
    await asyncio.gather(*tasks)
    delays.sort()

    def pct(p):
        return round(delays[min(len(delays) - 1, int(len(delays) * p))] * 1000, 1) if delays else None

    refused = {}
    for p in problems:
        refused[p] = refused.get(p, 0) + 1
    print(json.dumps({
        "watchers": int(watchers),
        "problems": refused,
        "events_per_watcher_min": min(counts),
        "events_per_watcher_max": max(counts),
        "deliveries": len(delays),
        "delay_ms_p50": pct(0.50),
        "delay_ms_p99": pct(0.99),
        "delay_ms_max": round(delays[-1] * 1000, 1) if delays else None,
    }))


asyncio.run(main())
