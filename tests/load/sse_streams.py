#!/usr/bin/env python3
"""Holds many Server-Sent Event streams open against marketd and counts what arrives.

    sse_streams.py --port P --keys-file F --streams N --seconds S --path PATH

Each key in F (one per line) opens up to --per-key streams (marketd's per-key cap).
Prints one JSON object: streams opened, refused (non-200), failed, price events
received, the fewest and most events on one stream, and how many streams saw at
least one event after their snapshot. Standard library only.
"""

import argparse
import asyncio
import json
import sys


async def hold(port, path, key, seconds, stats, index):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=30
        )
    except (OSError, asyncio.TimeoutError):
        stats["failed"] += 1
        return
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    events = 0
    try:
        status = await asyncio.wait_for(reader.readline(), timeout=30)
        if b" 200 " not in status:
            stats["refused"] += 1
            stats["statuses"][status.decode(errors="replace").strip()] = (
                stats["statuses"].get(status.decode(errors="replace").strip(), 0) + 1
            )
            return
        stats["opened"] += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=left)
            except asyncio.TimeoutError:
                break
            if not line:
                stats["closed_early"] += 1
                break
            if line.startswith(b"event: price"):
                events += 1
    except (OSError, asyncio.TimeoutError):
        stats["failed"] += 1
    finally:
        writer.close()
        stats["per_stream"][index] = events


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys-file", required=True)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--per-key", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--path", default="/v1/stream/prices?symbols=BTC,ETH")
    args = parser.parse_args()

    with open(args.keys_file) as f:
        keys = [line.strip() for line in f if line.strip()]
    if len(keys) * args.per_key < args.streams:
        sys.exit(f"{len(keys)} keys cannot open {args.streams} streams")
    stats = {
        "opened": 0,
        "refused": 0,
        "failed": 0,
        "closed_early": 0,
        "statuses": {},
        "per_stream": [0] * args.streams,
    }
    tasks = [
        hold(args.port, args.path, keys[i // args.per_key], args.seconds, stats, i)
        for i in range(args.streams)
    ]
    await asyncio.gather(*tasks)
    per_stream = stats.pop("per_stream")
    stats["events"] = sum(per_stream)
    stats["min_events"] = min(per_stream)
    stats["max_events"] = max(per_stream)
    # The first events of a stream are its snapshot, one per symbol.
    stats["streams_with_updates"] = sum(1 for n in per_stream if n > 2)
    print(json.dumps(stats))


if __name__ == "__main__":
    asyncio.run(main())
