// Validates AsyncAPI documents with the official parser (@asyncapi/parser).
// Usage: node tests/tools/validate-asyncapi.mjs FILE...; prints each diagnostic as a
// JSON line and exits 1 when a document has an error (severity 0).
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';

const parser = new Parser();
let failed = 0;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const d of diagnostics) {
    console.log(JSON.stringify({ file, severity: d.severity, code: d.code, message: d.message, path: d.path.join('.') }));
  }
  if (errors.length || !document) failed += 1;
}
process.exit(failed ? 1 : 0);
