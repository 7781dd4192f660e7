#!/usr/bin/env python3
"""Writes the report test fixtures (deterministic). Run from reports/testdata:
python3 gen_fixtures.py. Counters are integers so the JSON is exact."""
import json, datetime, math

T0 = datetime.datetime(2026, 11, 22, 6, 0, 0, tzinfo=datetime.timezone.utc)
N = 180          # seconds recorded
SWITCH = 60      # passthrough -> optimize
LINE = 240_000   # bytes/s

def ts(i, jitter_ms):
    t = T0 + datetime.timedelta(seconds=i, milliseconds=jitter_ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"

def write(name, rows):
    with open(name, "w") as f:
        for t, m in rows:
            f.write(json.dumps({"time": t, "metrics": m}, sort_keys=True, separators=(",", ":")) + "\n")

def effective(i):
    """logical bytes/s destaged at second i"""
    if i <= SWITCH:  # bytes counted at sample i flowed during (i-1, i]
        return 235_000
    k = i - SWITCH - 1
    if k < 10:
        return 8 * LINE
    if k < 40:
        return 20 * LINE
    return 14 * LINE

src, dst, pa, pb, link = [], [], [], [], []
destaged = wire = logical = hits = misses = linkb = 0
data = {"vm1": 0, "vm2": 0}
for i in range(N + 1):
    if i > 0:
        e = effective(i)
        destaged += e
        logical += e
        wire += LINE - 2_000
        linkb += LINE
        if i > SWITCH:
            hits += 900 + (i % 7) * 10
            misses += 60
        else:
            misses += 0
    # src data: grows to a peak at the switch, then drains
    for v, scale in (("vm1", 1.0), ("vm2", 0.5)):
        if i <= SWITCH:
            data[v] = int(scale * i * 1_000_000)
        else:
            data[v] = max(0, int(scale * (SWITCH * 1_000_000 - (i - SWITCH) * 800_000)))
    lat = {v: (i * 0.9 if i <= SWITCH else max(2.0, SWITCH * 0.9 - (i - SWITCH) * 0.6)) for v in data}
    src.append((ts(i, 3), {
        'aimwan_src_data_bytes{volume="vm1"}': data["vm1"],
        'aimwan_src_data_bytes{volume="vm2"}': data["vm2"],
        "aimwan_src_buffer_limit_bytes": 1 << 30,
    }))
    dst.append((ts(i, 5), {
        # the first destaged file: vm1 at 2 s, vm2 at 6 s (Time Latency is drawn from there on)
        'aimwan_dst_files_destaged_total{volume="vm1"}': max(0, i - 1) // 4 + (1 if i >= 2 else 0),
        'aimwan_dst_files_destaged_total{volume="vm2"}': max(0, i - 5) // 4 + (1 if i >= 6 else 0),
        'aimwan_dst_logical_bytes_total{volume="vm1"}': destaged * 2 // 3,
        'aimwan_dst_logical_bytes_total{volume="vm2"}': destaged - destaged * 2 // 3,
        'aimwan_time_latency_seconds{volume="vm1"}': round(lat["vm1"], 3),
        'aimwan_time_latency_seconds{volume="vm2"}': round(lat["vm2"] + 0.5, 3),
        'aimwan_dst_volume_offline{volume="vm1"}': 0,
        'aimwan_dst_volume_offline{volume="vm2"}': 0,
    }))
    cap = -1 if 120 <= i < 135 else ("+Inf" if 135 <= i < 150 else LINE)  # the proxy exports unlimited as -1
    # Every proxy metric carries the edge's role; the destination edge counts
    # the same logical bytes (out to dst) and puts acks on the WAN.
    pa.append((ts(i, 7), {
        'aimwan_proxy_logical_bytes_total{role="source"}': logical,
        'aimwan_proxy_wire_bytes_total{role="source"}': wire,
        'aimwan_proxy_cache_hits_total{role="source"}': hits,
        'aimwan_proxy_cache_misses_total{role="source"}': misses,
        'aimwan_proxy_schedule_cap_bytes_per_second{role="source"}': cap,
        'aimwan_proxy_peer_up{role="source"}': 1,
    }))
    pb.append((ts(i, 9), {
        'aimwan_proxy_peer_up{role="destination"}': 1,
        'aimwan_proxy_logical_bytes_total{role="destination"}': logical,
        'aimwan_proxy_wire_bytes_total{role="destination"}': i * 2_000,
    }))
    link.append((ts(i, 11), {
        'aimwan_link_bytes_total{direction="up"}': linkb,
        'aimwan_link_bytes_total{direction="down"}': i * 2_000,
        'aimwan_link_drops_total{reason="queue"}': i // 10,
        'aimwan_link_drops_total{reason="loss"}': 0,
        'aimwan_link_queue_bytes{direction="up"}': 30_000,
    }))

write("bench/src.jsonl", src)
write("bench/dst.jsonl", dst)
write("bench/proxy-src.jsonl", pa)
write("bench/proxy-dst.jsonl", pb)
write("bench/link.jsonl", link)
phases = [
    {"name": "passthrough", "start": ts(0, 0), "end": ts(SWITCH, 0)},
    {"name": "optimize", "start": ts(SWITCH, 0), "end": ts(N, 0)},
]
with open("bench/phases.json", "w") as f:
    json.dump(phases, f, indent=1)
    f.write("\n")
opt_s = N - SWITCH
opt_bytes = sum(effective(i) for i in range(SWITCH + 1, N + 1))
result = {
    "line_kbps": 240, "passthrough_kbps": 235, "effective_kbps": round(opt_bytes / opt_s / 1000, 1),
    "speedup": round(opt_bytes / opt_s / LINE, 2), "peak_speedup": 20.0,
    "logical_bytes": opt_bytes, "wire_bytes": opt_s * LINE, "elapsed_s": opt_s, "verified": True,
    "scale": "small",
}
with open("bench/result.json", "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")

# srconly: a source node alone (no proxies, no destination), with a torn last line.
rows = [(ts(i, 0), {'aimwan_src_data_bytes{volume="db"}': i * 4096}) for i in range(30)]
write("srconly/src.jsonl", rows)
with open("srconly/src.jsonl", "a") as f:
    f.write('{"time":"2026-11-22T06:00:30Z","metr')
