"""A schema registry for the tests: the subset of the Confluent Schema Registry REST API that
confluent-kafka's serializers and Tessera use, on a loopback port, its schemas kept in a JSON file
so that a restart (an outage) keeps them.

    REGISTRY_PASSWORD=W python3 schema_registry.py --port P --state FILE [--user U]

Implemented: POST /subjects/{subject}/versions (register; the same schema gets the same id),
POST /subjects/{subject} (look a schema up), GET /schemas/ids/{id}, GET /schemas/ids/{id}/versions,
GET /subjects, GET /subjects/{subject}/versions[/{version}|/latest], POST
/compatibility/subjects/{subject}/versions/{version} (always compatible), GET/PUT /config[/{subject}].
No Confluent Schema Registry can be installed here; the clients are the real ones.
"""
import argparse
import base64
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Store:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.schemas = []            # id - 1 → {"schema", "schemaType", "references"}
        self.subjects = {}           # subject → [id, …] (version - 1 → id)
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            self.schemas, self.subjects = saved["schemas"], saved["subjects"]

    def save(self):
        with open(self.path + ".tmp", "w") as f:
            json.dump({"schemas": self.schemas, "subjects": self.subjects}, f)
        os.replace(self.path + ".tmp", self.path)

    def register(self, subject, entry):
        with self.lock:
            if entry in self.schemas:
                schema_id = self.schemas.index(entry) + 1
            else:
                self.schemas.append(entry)
                schema_id = len(self.schemas)
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            self.save()
            return schema_id


def entry_of(body):
    return {"schema": body["schema"], "schemaType": body.get("schemaType", "AVRO"), "references": body.get("references", [])}


def make_handler(store, credentials):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def not_found(self, code, message):
            self.reply(404, {"error_code": code, "message": message})

        def authorized(self):
            if credentials is None:
                return True
            expected = "Basic " + base64.b64encode(credentials.encode()).decode()
            if self.headers.get("Authorization") == expected:
                return True
            self.reply(401, {"error_code": 401, "message": "Unauthorized"})
            return False

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def schema_reply(self, schema_id, subject=None, version=None):
            entry = store.schemas[schema_id - 1]
            out = {"id": schema_id, "schema": entry["schema"]}
            if entry["schemaType"] != "AVRO":
                out["schemaType"] = entry["schemaType"]
            if entry["references"]:
                out["references"] = entry["references"]
            if subject is not None:
                out.update(subject=subject, version=version)
            return out

        def do_GET(self):
            if not self.authorized():
                return
            path = urlparse(self.path).path.rstrip("/")
            if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                schema_id = int(m[1])
                if not 1 <= schema_id <= len(store.schemas):
                    return self.not_found(40403, "Schema not found")
                out = self.schema_reply(schema_id)
                del out["id"]
                return self.reply(200, out)
            if m := re.fullmatch(r"/schemas/ids/(\d+)/versions", path):
                schema_id = int(m[1])
                return self.reply(200, [{"subject": s, "version": v.index(schema_id) + 1}
                                        for s, v in store.subjects.items() if schema_id in v])
            if path == "/subjects":
                return self.reply(200, sorted(store.subjects))
            if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
                if m[1] not in store.subjects:
                    return self.not_found(40401, "Subject not found")
                return self.reply(200, list(range(1, len(store.subjects[m[1]]) + 1)))
            if m := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|-1|\d+)", path):
                versions = store.subjects.get(m[1])
                if not versions:
                    return self.not_found(40401, "Subject not found")
                version = len(versions) if m[2] in ("latest", "-1") else int(m[2])
                if not 1 <= version <= len(versions):
                    return self.not_found(40402, "Version not found")
                return self.reply(200, self.schema_reply(versions[version - 1], m[1], version))
            if path == "/config" or path.startswith("/config/"):
                return self.reply(200, {"compatibilityLevel": "BACKWARD"})
            self.not_found(404, f"no route {path}")

        def do_POST(self):
            if not self.authorized():
                return
            path = urlparse(self.path).path.rstrip("/")
            body = self.body()
            if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
                return self.reply(200, {"id": store.register(m[1], entry_of(body))})
            if m := re.fullmatch(r"/subjects/([^/]+)", path):
                entry = entry_of(body)
                for version, schema_id in enumerate(store.subjects.get(m[1], []), 1):
                    if store.schemas[schema_id - 1] == entry:
                        return self.reply(200, self.schema_reply(schema_id, m[1], version))
                return self.not_found(40403, "Schema not found")
            if re.fullmatch(r"/compatibility/subjects/([^/]+)/versions(/[^/]+)?", path):
                return self.reply(200, {"is_compatible": True})
            self.not_found(404, f"no route {path}")

        def do_PUT(self):
            if not self.authorized():
                return
            body = self.body()
            self.reply(200, {"compatibility": body.get("compatibility", "BACKWARD")})

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--user", help="require basic authentication as this user, with $REGISTRY_PASSWORD")
    args = parser.parse_args()
    credentials = f"{args.user}:{os.environ.get('REGISTRY_PASSWORD', '')}" if args.user else None
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(Store(args.state), credentials))
    server.serve_forever()


if __name__ == "__main__":
    main()
