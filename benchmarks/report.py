"""Writes the docs/performance.md, "Performance" table from benchmarks/results/*.json (between the PERF markers).

  python benchmarks/report.py
"""

from __future__ import annotations

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "docs", "performance.md")
START, END = "<!-- PERF:START -->", "<!-- PERF:END -->"


def _load(name):
  path = os.path.join(HERE, "results", name + ".json")
  return json.load(open(path)) if os.path.exists(path) else None


def _measured(m: dict) -> str:
  return (f"Measured {m.get('date', '?')} on {m.get('cores', '?')} CPU cores ({m.get('cpu', '?')}), "
          f"backend {m.get('backend', '?')}, jax {m.get('jax', '?')}, torch {m.get('torch', '-')}, memory allocator "
          f"{m.get('allocator', 'system')}, PyTorch and asl_jax in the same run with the same thread count.")


def render() -> str:
  """The tables, each under the facts of the run it comes from (the benchmarks are rerun separately)."""
  lines = []
  tt, et, ev = _load("train_throughput"), _load("epoch_time"), _load("eval_throughput")
  if tt:
    lines += [_measured(tt.get("machine", {})), ""]
    lines += ["| train step (B=32, T=16, G=1152, H=512) | params | asl_jax samples/s (ratio) | asl_jax, LSTM "
              "matmuls in bfloat16 (ratio) | PyTorch seed samples/s |",
              "|---|---|---|---|---|"]
    rows = {(r["config"], r["impl"]): r for r in tt["rows"]}

    def cell(r, t):
      return "-" if r is None else f"{r['samples_per_s']}" + (f" ({t['step_ms'] / r['step_ms']:.2f}x)" if t else "")

    for cfg in dict.fromkeys(r["config"] for r in tt["rows"]):
      j, t = rows.get((cfg, "jax")), rows.get((cfg, "torch"))
      lines.append(f"| {cfg} | {j['params'] / 1e6:.2f} M | {cell(j, t)} | {cell(rows.get((cfg, 'jax_bf16')), t)} | "
                   f"{t['samples_per_s'] if t else '-'} |")
    lines.append("")
  if et:
    if et.get("machine") != (tt or {}).get("machine"):
      lines += [_measured(et.get("machine", {})), ""]
    lines += ["| nslt_1000-shaped epoch (landmarks + visual) | asl_jax | PyTorch seed pipeline |", "|---|---|---|",
              f"| input pipeline alone, samples/s | {et['pipeline_jax_sps']} | {et.get('pipeline_torch_w0_sps', '-')} "
              f"(0 workers), {et.get('pipeline_torch_w2_sps', '-')} (2 workers) |",
              f"| training, samples/s | {et['jax_train_sps']} | {et.get('torch_train_sps', '-')} |",
              f"| epoch over {et['train_clips']} clips, s | {et['jax_epoch_s']} | {et.get('torch_epoch_s', '-')} |",
              f"| the same with `lstm_matmul_dtype=bfloat16`: training samples/s, epoch s | "
              f"{et.get('jax_bf16_train_sps', '-')}, {et.get('jax_bf16_epoch_s', '-')} | - |",
              f"| start-up: first pack / from cache, s | {et.get('first_pack_s', '-')} / {et['cached_start_s']} | - |",
              f"| pipeline overhead over the pure model step | {100 * et['pipeline_overhead']:.1f} % | - |", ""]
  if ev:
    lines += [f"Evaluation on nslt_2000-sized data ({ev['clips']} clips, streamed from the memory-mapped cache): "
              f"{ev['clips_per_s']} clips/s, peak RSS {ev['peak_rss_mb']} MB (packed landmarks {ev['packed_mb']} MB).", ""]
  return "\n".join(lines)


def main():
  text = open(DOC).read()
  block = f"{START}\n{render()}\n{END}"
  if START in text:
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
  else:
    text += "\n" + block + "\n"
  open(DOC, "w").write(text)
  print(render())


if __name__ == "__main__":
  main()
