/**
 * The inputs of `videolm batch`: each argument is a manifest (.csv / .jsonl), a folder (the videos directly in it), a
 * glob (`clips/**\/*.mp4`: `*`, `?`, `[abc]`, `{a,b}`, `**` across folders; quote it so the shell leaves it to
 * videolm) or one video file. Videos found by a folder or glob get the job's task and question; the items of all
 * arguments are one job, in order, the same item (same id) once.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { VideolmError } from "../errors.js";
import { itemId, resolveVideo, type BatchItem } from "./items.js";
import { isManifestPath, readManifest, type ItemDefaults } from "./manifest.js";

export const VIDEO_EXTENSIONS = /\.(mp4|m4v|mkv|webm|mov|avi|gif|mpe?g|ts|flv|wmv|3gp)$/i;

export function collectItems(inputs: string[], defaults: ItemDefaults): BatchItem[] {
  if (inputs.length === 0) throw new VideolmError("batch: give a folder, a glob or a manifest (.csv / .jsonl) of videos (see videolm batch --help)");
  const items: BatchItem[] = [];
  const seen = new Map<string, BatchItem>();
  for (const input of inputs) {
    for (const item of itemsOf(input, defaults)) {
      const earlier = seen.get(item.id);
      if (earlier) {
        // Two rows with one explicit id but different work would overwrite each other's result: refuse.
        if (earlier.video !== item.video || earlier.task !== item.task || earlier.question !== item.question || earlier.query !== item.query || JSON.stringify(earlier.media) !== JSON.stringify(item.media)) {
          throw new VideolmError(`${item.origin}: id ${JSON.stringify(item.id)} is already used by ${earlier.origin} for other work; ids must be unique`);
        }
        continue;
      }
      seen.set(item.id, item);
      items.push(item);
    }
  }
  return items;
}

function itemsOf(input: string, defaults: ItemDefaults): BatchItem[] {
  const stat = statOrUndefined(input);
  if (stat?.isFile() && isManifestPath(input)) return readManifest(input, defaults);
  if (stat?.isDirectory()) {
    const videos = fs.readdirSync(input, { withFileTypes: true }).filter((e) => e.isFile() && VIDEO_EXTENSIONS.test(e.name)).map((e) => path.join(input, e.name)).sort();
    if (videos.length === 0) throw new VideolmError(`${input}: no videos in this folder (${VIDEO_EXTENSIONS.source.replace(/[\\^$()]/g, "").replace(/\|/g, ", ")}); for subfolders use a glob: "${path.join(input, "**", "*.mp4")}"`);
    return videos.map((v) => fileItem(v, defaults, `${input}/`));
  }
  if (stat?.isFile()) return [fileItem(input, defaults, input)];
  if (/[*?[{]/.test(input)) {
    const files = globFiles(input);
    if (files.length === 0) throw new VideolmError(`${input}: the glob matches no file`);
    return files.map((v) => fileItem(v, defaults, input));
  }
  if (/^https?:/i.test(input)) return [fileItem(input, defaults, input)];
  throw new VideolmError(`${input}: no such file or folder`);
}

function fileItem(video: string, defaults: ItemDefaults, origin: string): BatchItem {
  const task = defaults.task ?? "answer";
  if (task === "answer" && !defaults.question?.trim()) throw new VideolmError(`batch: videos from a folder, glob or file need --question (or --task events, or --task ground --query TEXT); ${origin}`);
  if (task === "ground" && !defaults.query?.trim()) throw new VideolmError("batch: --task ground needs --query TEXT");
  const item = { video: resolveVideo(video, process.cwd()), task, ...(task === "answer" ? { question: defaults.question } : {}), ...(task === "ground" ? { query: defaults.query } : {}), media: {} };
  return { id: itemId(item), ...item, origin: video };
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

/** The files matching a glob, sorted; the walk starts at the longest folder prefix without wildcards. */
export function globFiles(pattern: string): string[] {
  const parts = pattern.split(/[\\/]/);
  const firstWild = parts.findIndex((p) => /[*?[{]/.test(p));
  const root = parts.slice(0, firstWild).join("/") || (pattern.startsWith("/") ? "/" : ".");
  const regex = globRegex(parts.slice(firstWild).join("/"));
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith(".")) continue; // as shells do: hidden files only by an explicit pattern
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else if (e.isFile() && regex.test(r)) out.push(path.join(root, r));
    }
  };
  walk(root, "");
  return out.sort();
}

/** A glob (relative to its root) as a regular expression over `/`-separated relative paths. */
export function globRegex(glob: string): RegExp {
  let re = "";
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        // `**/` matches zero or more folders; a trailing `**` anything
        const slash = glob[i + 2] === "/";
        re += slash ? "(?:[^/]*/)*" : ".*";
        i += slash ? 2 : 1;
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 1);
      if (close < 0) re += "\\[";
      else {
        const body = glob.slice(i + 1, close).replace(/^!/, "^").replace(/\\/g, "\\\\");
        re += `[${body}]`;
        i = close;
      }
    } else if (c === "{") {
      braces++;
      re += "(?:";
    } else if (c === "}" && braces > 0) {
      braces--;
      re += ")";
    } else if (c === "," && braces > 0) re += "|";
    else re += c.replace(/[.+^$()|\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
