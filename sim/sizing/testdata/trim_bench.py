#!/usr/bin/env python3
"""Copy a bench run's files the sizing validation needs, keeping only the metrics it reads."""
import json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
keep = {"src": ["aimwan_src_bytes_captured_total", "aimwan_src_data_bytes"],
        "dst": ["aimwan_time_latency_seconds"],
        "proxy-src": ["aimwan_proxy_logical_bytes_total", "aimwan_proxy_wire_bytes_total"],
        "link": ["aimwan_link_bytes_total"]}
os.makedirs(dst, exist_ok=True)
for f in ["result.json", "phases.json"]:
    shutil.copy(os.path.join(src, f), dst)
for d, names in keep.items():
    with open(os.path.join(src, d + ".jsonl")) as fi, open(os.path.join(dst, d + ".jsonl"), "w") as fo:
        for line in fi:
            if not line.strip():
                continue
            s = json.loads(line)
            m = {k: v for k, v in s["metrics"].items() if k.split("{")[0] in names}
            fo.write(json.dumps({"time": s["time"], "metrics": m}, separators=(",", ":"), sort_keys=True) + "\n")
