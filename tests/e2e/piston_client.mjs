// Drives npm's piston-client (1.0.2) against a server, as its README shows, and
// prints every answer as one JSON document for tests/e2e/test_piston_api.py.
// Usage: node piston_client.mjs <path of piston-client/index.js> <server URL>
import { pathToFileURL } from "node:url";

const [modulePath, server] = process.argv.slice(2);
const { piston } = await import(pathToFileURL(modulePath).href);
const client = piston({ server });

const runtimes = await client.runtimes();
// No version: the client picks the newest of /runtimes for the language's name.
const hello = await client.execute("python", 'print("hello from piston-client")');
const withInput = await client.execute(
  "javascript",
  'const d = require("fs").readFileSync(0, "utf8");' +
    'console.log(d.trim() + " " + process.argv.slice(2).join(","));',
  { stdin: "abc", args: ["x", "y"] },
);
const compiled = await client.execute("c++", '#include <iostream>\nint main(){std::cout<<"c++ ok\\n";}',
  { version: "*" });
const limited = await client.execute("python", "while True: pass", { runTimeout: 500 });
// An alias leaves the version undefined (the client matches names only): Piston's 400.
const alias = await client.execute("py", "print(1)");
console.log(JSON.stringify({ runtimes, hello, withInput, compiled, limited, alias }));
