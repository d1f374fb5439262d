/**
 * The prompt templates of original-format InternVL checkpoints (InternVLChatModel), for checkpoints that ship no chat
 * template: `model.chat` builds the prompt with the conversation.py template named by config.json `template`.
 * Reference: OpenGVLab/InternVL internvl_chat/internvl/conversation.py @c981100b, `internvl2_5`
 * (Conversation(system_template='<|im_start|>system\n{system_message}', system_message=<below>, roles=
 * ('<|im_start|>user\n', '<|im_start|>assistant\n'), sep_style=MPT, sep='<|im_end|>\n')), written as the jinja the
 * Flash fixture asserts equal to it (tools/oracle/record_internvl_flash.py; docs/internvl-flash-reference.md §8):
 * the default system turn unless the conversation starts with a system message, then each turn, then the generation
 * prompt. Content arrives as one string (InternVLProcessor.contentAsText).
 */
const INTERNVL2_5_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。";

const TEMPLATES: Record<string, string> = {
  internvl2_5:
    `{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n${INTERNVL2_5_SYSTEM}<|im_end|>\n{% endif %}` +
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
};

/** The jinja for conversation.py template `name`, or undefined for names videolm does not carry. */
export function conversationTemplate(name: string | undefined): { template: string; source: string } | undefined {
  if (name === undefined || !(name in TEMPLATES)) return undefined;
  return { template: TEMPLATES[name], source: `conversation.py template "${name}" (config.json; the checkpoint ships no chat template)` };
}
