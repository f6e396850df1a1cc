#!/usr/bin/env python3
"""Upload clients for the large-file paths, as a browser would drive them. Standard library only;
the file is read at each part's offset, never whole into memory. Prints one JSON line: the ids and
the seconds each phase took.

  direct_client.py BASE TOKEN MESSAGE FILE NAME [CONCURRENCY]
      direct-to-storage: create the session, PUT the parts straight to storage through their
      presigned URLs (CONCURRENCY at a time, default 4), complete.
  direct_client.py --tus BASE TOKEN MESSAGE FILE NAME [CHUNK_BYTES]
      tus 1.0.0 through the service: create, then one PATCH per chunk (default 8 MiB) in order.
"""
import base64
import concurrent.futures
import http.client
import json
import os
import sys
import time
import urllib.parse


# http.client writes a file body in `blocksize` pieces, 8 KiB by default: 128 Ki send calls per GiB,
# which measured here at about 17 ms of the client's CPU per 8 MiB chunk, taken from the two cores
# that the service and the store share. Browsers and curl write far larger pieces; so does this.
BLOCK = 1 << 20


def request(method, url, body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600, blocksize=BLOCK)
    path = u.path + ("?" + u.query if u.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, res.getheader("etag"), data


class FileRange:
    """A part of the file as a readable body of known length (http.client streams it)."""

    def __init__(self, fd, offset, size):
        self.fd, self.offset, self.left = fd, offset, size

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        n = min(n, 1 << 20)
        b = os.pread(self.fd, n, self.offset)
        self.offset += len(b)
        self.left -= len(b)
        return b


def tus(base, token, message, path, name, chunk):
    size = os.path.getsize(path)
    common = {"authorization": "Bearer " + token, "tus-resumable": "1.0.0"}
    t0 = time.monotonic()
    meta = "filename " + base64.b64encode(name.encode()).decode()
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600, blocksize=BLOCK)
    conn.request("POST", f"/api/v1/emails/{message}/tus", body=b"",
                 headers={**common, "upload-length": str(size), "upload-metadata": meta})
    res = conn.getresponse()
    res.read()
    if res.status != 201:
        sys.exit(f"tus create: {res.status}")
    location = urllib.parse.urlsplit(res.getheader("location")).path
    fd = os.open(path, os.O_RDONLY)
    offset = 0
    while offset < size:
        n = min(chunk, size - offset)
        conn.request("PATCH", location, body=FileRange(fd, offset, n), headers={
            **common, "upload-offset": str(offset), "content-length": str(n),
            "content-type": "application/offset+octet-stream"})
        res = conn.getresponse()
        res.read()
        if res.status != 204:
            sys.exit(f"tus PATCH at {offset}: {res.status}")
        offset = int(res.getheader("upload-offset"))
    os.close(fd)
    conn.close()
    t1 = time.monotonic()
    print(json.dumps({"upload": location, "chunk": chunk, "total": round(t1 - t0, 3)}))


def main():
    if sys.argv[1] == "--tus":
        base, token, message, path, name = sys.argv[2:7]
        chunk = int(sys.argv[7]) if len(sys.argv) > 7 else 8 * 1024 * 1024
        return tus(base, token, message, path, name, chunk)
    base, token, message, path, name = sys.argv[1:6]
    concurrency = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    size = os.path.getsize(path)
    auth = {"authorization": "Bearer " + token, "content-type": "application/json"}
    t0 = time.monotonic()
    status, _, data = request(
        "POST", f"{base}/api/v1/emails/{message}/uploads",
        json.dumps({"filename": name, "size": size, "contentType": "application/octet-stream"}), auth)
    if status != 201:
        sys.exit(f"create: {status} {data[:300]!r}")
    session = json.loads(data)
    t1 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)

    def put(part):
        offset = (part["partNumber"] - 1) * session["partSize"]
        body = FileRange(fd, offset, part["size"])
        st, etag, d = request("PUT", part["url"], body, {"content-length": str(part["size"])})
        if st != 200 or not etag:
            raise RuntimeError(f"part {part['partNumber']}: {st} {d[:200]!r}")
        return part["partNumber"], etag

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        etags = sorted(pool.map(put, session["parts"]))
    os.close(fd)
    t2 = time.monotonic()
    status, _, data = request(
        "POST", f"{base}/api/v1/uploads/{session['uploadId']}/complete",
        json.dumps({"parts": [{"partNumber": n, "etag": e} for n, e in etags]}), auth)
    if status != 202:
        sys.exit(f"complete: {status} {data[:300]!r}")
    t3 = time.monotonic()
    print(json.dumps({
        "uploadId": session["uploadId"], "attachmentId": session["attachmentId"],
        "parts": len(etags), "partSize": session["partSize"],
        "create": round(t1 - t0, 3), "parts_s": round(t2 - t1, 3), "complete": round(t3 - t2, 3),
        "total": round(t3 - t0, 3),
    }))


if __name__ == "__main__":
    main()
