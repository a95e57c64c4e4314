// Builds the playground and the dashboard into static/ (committed, shipped in the
// Python package): `npm ci && node build.mjs`, or let ./deploy.sh do it when the
// inputs changed. Records the digest of its inputs in static/manifest.json by the
// rule bundle.py checks (sorted relative paths; SHA-256 of "path NUL content NUL").
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "static");
const assets = join(out, "assets");
const PAGES = { "index.html": "playground", "dashboard.html": "dashboard" };

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : entry.isFile() ? [path] : [];
  });
}

const posix = (path) => relative(here, path).split(sep).join("/");

function inputsDigest() {
  const names = ["build.mjs", "package.json", "package-lock.json"]
    .filter((name) => existsSync(join(here, name)))
    .concat(walk(join(here, "src")).map(posix))
    .sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : Buffer.from(a) > Buffer.from(b) ? 1 : 0));
  const hash = createHash("sha256");
  for (const name of names) {
    hash.update(Buffer.concat([Buffer.from(name), Buffer.from([0]), readFileSync(join(here, name)), Buffer.from([0])]));
  }
  return hash.digest("hex");
}

rmSync(out, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });
const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { playground: "src/playground.js", dashboard: "src/dashboard.js" },
  bundle: true,
  splitting: true, // each language's grammar is a chunk loaded when it is picked
  format: "esm",
  minify: true,
  target: ["chrome100", "firefox100", "safari15"],
  entryNames: "[name]-[hash]",
  chunkNames: "chunks/[name]-[hash]",
  outdir: assets,
  metafile: true,
  legalComments: "external",
  logLevel: "warning",
});

const url = (path) => `/static/${relative(out, join(here, path)).split(sep).join("/")}`;
const outputs = result.metafile.outputs;
const pages = {};
for (const [page, entry] of Object.entries(PAGES)) {
  const [js, meta] = Object.entries(outputs).find(([, o]) => o.entryPoint === `src/${entry}.js`);
  // What the page needs before it can run: the entry and its static imports (not
  // the grammars, which are dynamic imports), and its style sheet.
  const needed = new Set();
  const visit = (path) => {
    if (needed.has(path)) return;
    needed.add(path);
    for (const imp of outputs[path].imports) if (imp.kind === "import-statement") visit(imp.path);
  };
  visit(js);
  const chunks = [...needed].filter((path) => path !== js);
  let html = readFileSync(join(here, "src", `${entry}.html`), "utf8");
  html = html
    .replace("{{css}}", `<link rel="stylesheet" href="${url(meta.cssBundle)}">`)
    .replace("{{preload}}", chunks.map((c) => `<link rel="modulepreload" href="${url(c)}">`).join("\n  "))
    .replace("{{js}}", `<script type="module" src="${url(js)}"></script>`);
  writeFileSync(join(out, page), html);
  const files = [js, ...chunks, meta.cssBundle].map((p) => join(here, p));
  pages[page] = {
    files: files.map((f) => relative(out, f).split(sep).join("/")),
    bytes: files.reduce((n, f) => n + statSync(f).size, Buffer.byteLength(html)),
    gzip_bytes: files.reduce((n, f) => n + gzipSync(readFileSync(f), { level: 9 }).length,
      gzipSync(html, { level: 9 }).length),
  };
}

// Sizes, as sent: the ingress gzips text assets for clients that accept it.
const sizes = {};
for (const file of walk(assets)) {
  const body = readFileSync(file);
  sizes[relative(out, file).split(sep).join("/")] = { bytes: body.length, gzip_bytes: gzipSync(body, { level: 9 }).length };
}

// Whose code is in the bundle: every package the bundle took a file from.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (!match || packages.has(match[1])) continue;
  const root = join(here, "node_modules", match[1]);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const license = readdirSync(root).find((n) => /^licen[cs]e/i.test(n));
  packages.set(match[1], `${pkg.name} ${pkg.version} (${pkg.license})\n\n${license ? readFileSync(join(root, license), "utf8").trim() : ""}\n`);
}
writeFileSync(join(out, "THIRD_PARTY.txt"),
  "Third-party code bundled into these assets (from npm, by services/web/build.mjs):\n\n" +
  [...packages.keys()].sort().map((name) => packages.get(name)).join("\n" + "-".repeat(72) + "\n\n"));

const manifest = { inputs: inputsDigest(), esbuild: esbuild.version, pages, assets: sizes };
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
for (const [page, info] of Object.entries(pages)) {
  console.log(`${page}: first load ${(info.bytes / 1024).toFixed(1)} KiB, ${(info.gzip_bytes / 1024).toFixed(1)} KiB gzipped`);
}
