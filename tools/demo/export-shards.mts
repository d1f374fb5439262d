/**
 * Training/evaluation data for the demo model, produced exactly as videolm prepares a request at inference:
 * each synthetic scene is encoded to an H.264 mp4 with FFmpeg, then `RequestPreparer.prepare` decodes, samples,
 * resizes and patchifies it and tokenizes the chat prompt. The trainer (tools/demo/train.py) reads the result.
 *
 * Shard format (<out>/shard-NNNN.u8 + shard-NNNN.json, the JSON written last so a shard is complete once it exists):
 *   .u8   the pixel_values of every video of the shard, one byte per value: the uint8 pixel the float came from.
 *         pixel_values[r, j] = lut[channel(j)][code[r, j]] with channel(j) = floor(j / (temporalPatch·patch²)),
 *         where lut is videolm's own float32 normalisation table (verified value by value while exporting).
 *   .json { lut: [3][256], rowLength, videos: [{ seed, kind, grid:[t,h,w], offset (rows), rows,
 *           questions: [{ type, question, answer, times?, promptIds, answerIds }] }] }
 * answerIds are the answer's tokens followed by <|im_end|> (what the model must generate).
 * questions: every question of the scene (src/synth allQuestionsFor): the original ones, then the event questions
 * (grounding "ground", dense caption "dense"); the trainer's --types keeps a subset (stage 1 trains the original nine).
 *
 * Usage: npx tsx tools/demo/export-shards.mts <outDir> <firstSeed> <videos> [shardSize=100] [checkpoint=models/videolm-demo] [firstShard=0] [stride=1]
 * (firstShard numbers the shards from there, so two exports of consecutive seed ranges can fill one folder in parallel;
 * with stride 2 this process writes every other shard, firstShard, firstShard + 2, …, shard k always holding seeds
 * firstSeed − firstShard·shardSize + k·shardSize …: two exports with firstShard 0 and 1 fill the folder in shard order,
 * so a trainer reading shards as they appear waits less)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { RequestPreparer } from "../../src/engine/preparer.js";
import { allQuestionsFor, DEMO_MEDIA_OPTIONS, demoMessages, encodeScene, sceneFromSeed } from "../../src/synth/index.js";

const [outDir, firstSeedArg, countArg, shardSizeArg = "100", ckpt = "models/videolm-demo", firstShardArg = "0", strideArg = "1"] = process.argv.slice(2);
const stride = Number(strideArg);
const firstShard = Number(firstShardArg);
const firstSeed = Number(firstSeedArg);
const count = Number(countArg);
const shardSize = Number(shardSizeArg);
fs.mkdirSync(outDir, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-demo-"));

const preparer = await RequestPreparer.load(ckpt);
const imEnd = preparer.tokenizer.tokenId("<|im_end|>");
const mean = [0.48145466, 0.4578275, 0.40821073];
const std = [0.26862954, 0.26130258, 0.27577711];
// videolm's normalisation (src/processing/qwen2-vl-patches.ts normalisationTable): float32 (v − 255·mean) / (255·std)
const f32 = Math.fround;
const lut = [0, 1, 2].map((c) => Array.from({ length: 256 }, (_, v) => f32(f32(v - f32(f32(mean[c]) * 255)) / f32(f32(std[c]) * 255))));
const codeOf = lut.map((table) => new Map(table.map((x, v) => [x, v])));

async function exportShard(shard: number, seeds: number[]): Promise<void> {
  const base = path.join(outDir, `shard-${String(shard).padStart(4, "0")}`);
  if (fs.existsSync(`${base}.json`)) return;
  const chunks: Buffer[] = [];
  const videos: unknown[] = [];
  let rowsSoFar = 0;
  let rowLength = 0;
  for (const seed of seeds) {
    const scene = sceneFromSeed(seed);
    const questions = allQuestionsFor(scene);
    const file = path.join(tmp, `${seed}.mp4`);
    await encodeScene(scene, file);
    const first = await preparer.prepare(demoMessages(file, questions[0].question), DEMO_MEDIA_OPTIONS);
    fs.rmSync(file);
    const visual = first.visuals[0];
    const { pixelValues, grid } = visual.batch;
    const rows = grid[0] * grid[1] * grid[2];
    rowLength = pixelValues.length / rows;
    const perChannel = rowLength / 3;
    const codes = Buffer.alloc(pixelValues.length);
    for (let i = 0; i < pixelValues.length; i++) {
      const c = Math.floor((i % rowLength) / perChannel);
      const code = codeOf[c].get(pixelValues[i]);
      if (code === undefined) throw new Error(`seed ${seed}: pixel value ${pixelValues[i]} (channel ${c}) is not in the normalisation table`);
      codes[i] = code;
    }
    chunks.push(codes);
    const qs = questions.map((q, i) => {
      // Same prompt path as RequestPreparer.prepare, reusing the already prepared video for the other questions.
      const ids =
        i === 0
          ? first.inputIds
          : preparer.processor.buildPrompt(
              preparer.template.render(
                [{ role: "user", content: [{ type: "video" }, { type: "text", text: q.question }] }],
                { addGenerationPrompt: true, specialTokens: {} },
              ),
              preparer.tokenizer,
              [visual],
            ).inputIds;
      return { ...q, promptIds: ids, answerIds: [...preparer.tokenizer.encode(q.answer), imEnd] };
    });
    videos.push({ seed, kind: scene.kind, duration: scene.duration, fps: scene.fps, size: [scene.width, scene.height], grid, offset: rowsSoFar, rows, questions: qs });
    rowsSoFar += rows;
  }
  fs.writeFileSync(`${base}.u8`, Buffer.concat(chunks));
  fs.writeFileSync(`${base}.json.tmp`, JSON.stringify({ lut, rowLength, videos }));
  fs.renameSync(`${base}.json.tmp`, `${base}.json`);
}

const t0 = Date.now();
for (let s = 0; s * shardSize < count; s++) {
  const seeds = Array.from({ length: Math.min(shardSize, count - s * shardSize) }, (_, i) => firstSeed + s * stride * shardSize + i);
  await exportShard(firstShard + s * stride, seeds);
  console.log(`shard ${firstShard + s * stride} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}
fs.rmSync(tmp, { recursive: true, force: true });
