#!/usr/bin/python3
"""A stand-in for the Kubernetes API server, for tests/integration/k8s_dra.sh.

Serves, over HTTPS (a certificate the test makes with openssl), what
gpumem-dra uses of resource.k8s.io/v1:

  GET/POST            /apis/resource.k8s.io/v1/resourceslices
  GET/PUT             /apis/resource.k8s.io/v1/resourceslices/NAME
  GET                 /apis/resource.k8s.io/v1/namespaces/NS/resourceclaims/NAME

Every request must carry "Authorization: Bearer <the token in TOKEN_FILE>"
(else 401). Every object the driver sends is validated with
tests/k8s/openapi.py against the real schema of resource.k8s.io/v1 when
SPEC exists: an invalid one is refused with 422, as the API server's strict
field validation does, and logged. POST of an existing name is 409; PUT
needs the current metadata.resourceVersion (else 409, a conflict).

Claims are the files CLAIMS_DIR/NS_NAME.json, read at each request (the test
adds them while the driver runs). What happened goes to STATE_DIR:
  port                 the port listened on (written when ready)
  slices/NAME.json     the stored ResourceSlices
  writes.log           one line per write: "METHOD NAME generation=G devices=N"
  invalid.log          one line per refused object, with the schema errors
  validated            one line per object checked against the schema

usage: dra_apiserver.py CERT KEY TOKEN_FILE CLAIMS_DIR STATE_DIR SPEC
"""

import http.server
import json
import os
import re
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi  # noqa: E402

CERT, KEY, TOKEN_FILE, CLAIMS, STATE, SPEC = sys.argv[1:7]
HAVE_SPEC = os.path.exists(SPEC)
SLICES = "/apis/resource.k8s.io/v1/resourceslices"
CLAIM_RE = re.compile(r"^/apis/resource\.k8s\.io/v1/namespaces/([a-z0-9.-]+)/resourceclaims/([a-z0-9.-]+)$")
slices = {}
version = [0]


def log(name, line):
    with open(os.path.join(STATE, name), "a") as f:
        f.write(line + "\n")


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}


def validate(obj):
    """[] or the schema's complaints; [] without checking when no schema."""
    if not HAVE_SPEC:
        return []
    errs = openapi.validate(obj, SPEC)
    log("validated", "%s %s" % (obj.get("kind"), obj.get("metadata", {}).get("name")))
    return errs


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without this, Nagle holds the
    # second until the client acknowledges the first (40 ms delayed ACK).
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        with open(TOKEN_FILE) as f:
            want = "Bearer " + f.read().strip()
        if self.headers.get("Authorization") != want:
            self.reply(401, status(401, "Unauthorized", "Unauthorized"))
            return False
        return True

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n))
        except ValueError as e:
            return {"_bad": str(e)}

    def do_GET(self):
        if not self.authorized():
            return
        path = self.path.split("?")[0]
        m = CLAIM_RE.match(path)
        if m:
            f = os.path.join(CLAIMS, "%s_%s.json" % m.groups())
            if not os.path.exists(f):
                return self.reply(404, status(404, "NotFound",
                                              'resourceclaims.resource.k8s.io "%s" not found' % m.group(2)))
            with open(f) as fh:
                return self.reply(200, json.load(fh))
        if path.startswith(SLICES + "/"):
            name = path[len(SLICES) + 1:]
            if name not in slices:
                return self.reply(404, status(404, "NotFound",
                                              'resourceslices.resource.k8s.io "%s" not found' % name))
            return self.reply(200, slices[name])
        self.reply(404, status(404, "NotFound", "the server could not find the requested resource"))

    def store(self, method, obj, name):
        errs = validate(obj)
        if errs:
            log("invalid.log", "%s %s: %s" % (method, name, "; ".join(errs)))
            return self.reply(422, status(422, "Invalid", "ResourceSlice.resource.k8s.io \"%s\" is invalid: %s"
                                          % (name, "; ".join(errs))))
        version[0] += 1
        obj["metadata"]["resourceVersion"] = str(version[0])
        obj["metadata"].setdefault("uid", "00000000-0000-0000-0000-%012d" % version[0])
        slices[name] = obj
        os.makedirs(os.path.join(STATE, "slices"), exist_ok=True)
        with open(os.path.join(STATE, "slices", name + ".json.tmp"), "w") as f:
            json.dump(obj, f)
        os.rename(os.path.join(STATE, "slices", name + ".json.tmp"), os.path.join(STATE, "slices", name + ".json"))
        spec = obj.get("spec", {})
        log("writes.log", "%s %s generation=%s devices=%d" % (method, name, spec.get("pool", {}).get("generation"),
                                                            len(spec.get("devices", []))))
        self.reply(201 if method == "POST" else 200, obj)

    def do_POST(self):
        if not self.authorized():
            return
        obj = self.body()
        if self.path.split("?")[0] != SLICES or not isinstance(obj, dict) or "_bad" in obj:
            return self.reply(400, status(400, "BadRequest", "not a ResourceSlice"))
        name = obj.get("metadata", {}).get("name", "")
        if name in slices:
            return self.reply(409, status(409, "AlreadyExists", 'resourceslices "%s" already exists' % name))
        self.store("POST", obj, name)

    def do_PUT(self):
        if not self.authorized():
            return
        obj = self.body()
        path = self.path.split("?")[0]
        name = path[len(SLICES) + 1:] if path.startswith(SLICES + "/") else None
        if not name or not isinstance(obj, dict) or "_bad" in obj:
            return self.reply(400, status(400, "BadRequest", "not a ResourceSlice"))
        if name not in slices:
            return self.reply(404, status(404, "NotFound", 'resourceslices "%s" not found' % name))
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv != slices[name]["metadata"]["resourceVersion"]:
            return self.reply(409, status(409, "Conflict", "the object has been modified (resourceVersion %s)" % rv))
        self.store("PUT", obj, name)


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(os.path.join(STATE, "port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(os.path.join(STATE, "port.tmp"), os.path.join(STATE, "port"))
    srv.serve_forever()


if __name__ == "__main__":
    main()
