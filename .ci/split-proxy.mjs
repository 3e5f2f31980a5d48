// .ci/split-proxy.mjs PORT PRISM SERVER: listens on 127.0.0.1:PORT and
// sends each request through prism (the validating proxy at PRISM), except
// those with binary bodies: multipart requests and the media files go
// straight to SERVER. Prism keeps bodies as text, which corrupts binary
// ones both ways (stoplightio/prism issues 1321 and 2376); the answers of
// those routes are held to openapi.json by the Go tests instead.
import http from "node:http";

const [port, prism, server] = process.argv.slice(2);
let direct = 0;

http.createServer((req, res) => {
  const binary = (req.headers["content-type"] ?? "").startsWith("multipart/") || req.url.startsWith("/media/");
  if (binary) console.log(`direct: ${req.method} ${req.url.split("?")[0]} (${++direct})`);
  const upstream = http.request(new URL(req.url, binary ? server : prism), { method: req.method, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  upstream.on("error", (err) => {
    res.writeHead(502, { "Content-Type": "text/plain" });
    res.end(`split-proxy: ${err.message}\n`);
  });
  req.pipe(upstream);
}).listen(Number(port), "127.0.0.1", () => console.log(`split-proxy listening on ${port}`));
