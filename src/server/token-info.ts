/** Token text and bytes for logprob entries; shared with the command line (see src/text/token-info.ts). */
export { TokenInfo, type TokenLogprob } from "../text/token-info.js";
