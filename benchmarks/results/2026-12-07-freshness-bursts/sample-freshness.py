import sys, time, json, urllib.request, subprocess, re, os
mport, rport, rpid, out = sys.argv[1], sys.argv[2], sys.argv[3], open(sys.argv[4], "w")
tck = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split(); return (int(f[11]) + int(f[12])) / tck
def metrics():
    try: text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=1).read().decode()
    except Exception: return None
    b = {}
    for l in text.splitlines():
        m = re.match(r'tessera_freshness_seconds_bucket\{.*le="([^"]+)".*\} (\S+)', l)
        if m: b[m.group(1)] = b.get(m.group(1), 0) + float(m.group(2))
    return b
prev = metrics(); pc = cpu(rpid); t0 = time.time()
while True:
    time.sleep(1)
    m = metrics()
    if m is None: break
    c = cpu(rpid)
    ht = subprocess.run(["redis-cli", "-p", rport, "DEBUG", "HTSTATS", "0"], capture_output=True, text=True).stdout
    keys = subprocess.run(["redis-cli", "-p", rport, "DBSIZE"], capture_output=True, text=True).stdout.strip()
    d = {k: m[k] - prev.get(k, 0) for k in m}
    n = d.get("+Inf", 0)
    les = sorted((float(k), v) for k, v in d.items() if k != "+Inf")
    within = {k: v for k, v in les}
    row = {"t": round(time.time() - t0, 1), "rows": n, "keys": keys, "redis_cpu": round(c - pc, 2),
           "le": {str(k): round(v / n, 3) for k, v in les if n} , "rehash": "rehashing" in ht.lower() or "Table 1" in ht}
    out.write(json.dumps(row) + "\n"); out.flush()
    prev, pc = m, c
