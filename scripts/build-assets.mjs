// After `tsc`: copy the web app's static files next to the compiled server, and make the CLI entry executable
// (tsc writes 0644 files; npm runs a package's own bin through its file mode, so `npx videolm` needs the x bit).
import { chmodSync, cpSync } from "node:fs";

cpSync("src/web", "dist/web", { recursive: true });
chmodSync("dist/cli/main.js", 0o755);
