// Validates Knative serving.knative.dev/v1 Service manifests (JSON, one file per argument)
// against the Service JSON schema of @kubernetes-models/knative. scripts/check-gcp.sh converts
// deploy/gcp/service.yaml to JSON and runs this with NODE_PATH pointing at its npm tool dir.
// Exits 1 naming each violation.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// The package's exports map offers only ESM imports by bare name from a project that depends on
// it; this script lives outside that project, so it imports the file itself.
const modulePath = path.join(process.env.NODE_PATH ?? "node_modules", "@kubernetes-models/knative/serving.knative.dev/v1/Service.js");
const { Service } = await import(pathToFileURL(modulePath).href);

let failed = 0;
for (const file of process.argv.slice(2)) {
  const manifest = JSON.parse(readFileSync(file, "utf8"));
  if (manifest.apiVersion !== Service.apiVersion || manifest.kind !== Service.kind) {
    console.error(`${file}: apiVersion/kind is ${manifest.apiVersion}/${manifest.kind}, expected ${Service.apiVersion}/Service`);
    failed += 1;
    continue;
  }
  try {
    new Service(manifest).validate();
    console.log(`ok: ${file} is a valid ${Service.apiVersion} Service`);
  } catch (error) {
    console.error(`${file}: ${error.message}`);
    for (const detail of error.details ?? []) {
      console.error(`  ${detail.instancePath || "/"}: ${detail.message} ${JSON.stringify(detail.params)}`);
    }
    failed += 1;
  }
}
process.exit(failed ? 1 : 0);
