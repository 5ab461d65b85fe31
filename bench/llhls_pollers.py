#!/usr/bin/env python3
"""hls.js-like LL-HLS pollers for bench/llhls.sh: each poller keeps one HTTP/1.1 keep-alive
connection and loops like hls.js in low-latency mode: a blocking playlist reload for the next
part (_HLS_msn/_HLS_part), then a GET of that part. Prints one JSON line with what it did.

    llhls_pollers.py HOST PORT PLAYLIST_PATH POLLERS SECONDS
"""
import asyncio
import json
import re
import sys
import time

PART_RE = re.compile(rb'#EXT-X-PART:[^\n]*URI="([^"]+)"')
MSN_RE = re.compile(rb"#EXT-X-MEDIA-SEQUENCE:(\d+)")


class Stats:
    def __init__(self):
        self.playlists = 0
        self.parts = 0
        self.bytes = 0
        self.errors = 0
        self.waits = []


async def request(reader, writer, host, path):
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return status, body


def next_part(text):
    """The msn and part index after the last listed part (the open segment's next part)."""
    parts = PART_RE.findall(text)
    if not parts:
        return None
    last = parts[-1].decode()
    stem = last.rsplit(".", 2)[0]  # name-MSN.PART.m4s -> name-MSN
    msn = int(stem.rsplit("-", 1)[1])
    idx = int(last.rsplit(".", 2)[1])
    # After the open segment's parts come the next segment's when the segment is complete;
    # asking for part idx+1 of msn works either way (the server answers when it exists or
    # when segment msn is complete).
    return msn, idx + 1, last


async def poller(host, port, path, until, stats, base_dir):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats.errors += 1
        return
    try:
        status, body = await request(reader, writer, host, path)
        stats.playlists += 1
        while time.monotonic() < until and status == 200:
            nxt = next_part(body)
            if nxt is None:
                await asyncio.sleep(0.2)
                status, body = await request(reader, writer, host, path)
                continue
            msn, part, _ = nxt
            t0 = time.monotonic()
            status, body = await request(
                reader, writer, host, f"{path}?_HLS_msn={msn}&_HLS_part={part}"
            )
            stats.waits.append(time.monotonic() - t0)
            stats.playlists += 1
            if status != 200:
                stats.errors += 1
                break
            nxt = next_part(body)
            if nxt:
                st, data = await request(reader, writer, host, base_dir + nxt[2])
                stats.parts += 1
                stats.bytes += len(data)
                if st != 200:
                    stats.errors += 1
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        stats.errors += 1
    finally:
        writer.close()


async def main():
    host, port, path, n, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    base_dir = path.rsplit("/", 1)[0] + "/"
    stats = Stats()
    until = time.monotonic() + seconds
    start = time.monotonic()
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(poller(host, port, path, until, stats, base_dir)))
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    w = sorted(stats.waits)
    print(json.dumps({
        "pollers": n,
        "seconds": round(elapsed, 1),
        "playlist_requests": stats.playlists,
        "part_requests": stats.parts,
        "requests_per_second": round((stats.playlists + stats.parts) / elapsed),
        "part_bytes": stats.bytes,
        "errors": stats.errors,
        "blocking_wait_ms_median": round(1000 * w[len(w) // 2]) if w else None,
        "blocking_wait_ms_p99": round(1000 * w[int(len(w) * 0.99)]) if w else None,
    }))


if __name__ == "__main__":
    asyncio.run(main())
