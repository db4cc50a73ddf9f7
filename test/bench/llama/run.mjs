// llama.cpp through node-llama-cpp on a GGUF file: prefill and greedy decode tokens/s over rounds,
// peak RSS of this process (the only one llama.cpp runs in). The prompt is given as token ids,
// the same ids as the other variants of test/bench/bench_qwen3.py.
//   node run.mjs '{"model": "m.gguf", "prompt": [1, 2, 3], "decode": 32, "rounds": 3, "threads": 2}'
// prints one JSON line: prefill_tps_rounds, decode_tps_rounds, tokens (the last round's), peak_rss_bytes.
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const cfg = JSON.parse(process.argv[2]);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: cfg.model, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: cfg.prompt.length + cfg.decode + 8,
  batchSize: cfg.prompt.length,
  threads: cfg.threads,
  sequences: 1,
});
const sequence = context.getSequence();

async function round() {
  await sequence.clearHistory();
  const times = [], tokens = [];
  const t0 = performance.now();
  // temperature 0: greedy; the first token arrives after the prompt's prefill
  for await (const token of sequence.evaluate(cfg.prompt, { temperature: 0 })) {
    times.push(performance.now());
    tokens.push(token);
    if (tokens.length > cfg.decode) break;
  }
  return { prefill_s: (times[0] - t0) / 1000, decode_s: (times[times.length - 1] - times[0]) / 1000, tokens };
}

const rounds = [];
for (let r = 0; r <= cfg.rounds; r++) rounds.push(await round()); // round 0: warm-up
const measured = rounds.slice(1);
console.log(JSON.stringify({
  prefill_tps_rounds: measured.map((r) => cfg.prompt.length / r.prefill_s),
  // tokens decoded after the first: fewer than cfg.decode when generation stopped at an end token
  decode_tps_rounds: measured.map((r) => (r.tokens.length - 1) / r.decode_s),
  tokens: measured[measured.length - 1].tokens,
  peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
}));
await context.dispose();
await model.dispose();
await llama.dispose();
