// A Node.js client of credo.v1.DecisionService built from the .proto alone (no generated code, no
// Credo code): node decide.js HOST:PORT POLICY APPLICATION.json [REQUEST_ID]
// Prints the Decision as JSON; on an error prints {code, details} and exits 1.
"use strict";
const path = require("path");
const fs = require("fs");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "protos");

function main() {
  const [target, policy, applicationFile, requestId] = process.argv.slice(2);
  if (!target || !policy || !applicationFile) {
    console.error("usage: node decide.js HOST:PORT POLICY APPLICATION.json [REQUEST_ID]");
    process.exit(2);
  }
  const definition = protoLoader.loadSync("credo/v1/decision.proto", {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const credo = grpc.loadPackageDefinition(definition).credo.v1;
  const client = new credo.DecisionService(target, grpc.credentials.createInsecure());
  const application = JSON.parse(fs.readFileSync(applicationFile, "utf8"));
  const request = {
    request_id: requestId || `node-${Date.now()}`,
    policy,
    application: toStruct(application),
    language: "en",
  };
  const deadline = new Date(Date.now() + 30000);
  client.Decide(request, { deadline }, (err, decision) => {
    if (err) {
      console.log(JSON.stringify({ code: grpc.status[err.code], details: err.details }));
      process.exit(1);
    }
    console.log(JSON.stringify(decision));
    client.close();
  });
}

// google.protobuf.Struct in proto-loader's object form: {fields: {name: Value}}. The well-known
// types come from protobufjs's bundled definitions, whose field names are camelCase even with keepCase.
function toValue(v) {
  if (v === null || v === undefined) return { nullValue: "NULL_VALUE" };
  if (typeof v === "boolean") return { boolValue: v };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}

function toStruct(obj) {
  const fields = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v);
  return { fields };
}

main();
