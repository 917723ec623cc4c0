"""OpenAI-compatible fake servers in their own process, for failover tests and benchmarks.

    python -m tests.helpers.fake_openai_proc --listeners 64 --capacity 1 --latency-ms 200 --log busy.jsonl

`--listeners` HTTP listeners on 127.0.0.1 (one endpoint each, ports chosen by the OS)
run in one asyncio loop; the process prints one line per listener, `URL <base url>`,
then `READY`. Each listener serves at most `--capacity` requests at a time (more wait)
and answers /v1/completions and /v1/chat/completions after `--latency-ms` plus
`--ms-per-token` times the answer's (pretend) token count. A process can be SIGKILLed
like a real server.

Answers are a pure function of the request body, so a campaign's results do not depend
on which endpoint answered. The prompt kind is told as the scripted engine tells it: a
prompt ending in "Solution:" is a solve prompt, one ending in "Skills:" a skill-labelling
prompt, anything else a mutation prompt.
- mutation: a new, parseable problem "What is A plus B?" with its solution and answer
  (A, B from a hash of the prompt and the request seed: distinct per slot and step);
  in the few-shot format ("New solution: ... The answer is X.") for completion prompts,
  tagged (<problem>, <solution>, \\boxed{}) for chat prompts;
- solve: `n` attempts at the problem in the prompt, a hash-chosen share of them right
  (so solve rates spread over [0, 1]), each ending in "The answer is X.";
- label: an empty answer.

`--max-seqs N` (> 0) turns each listener into a model of a continuously batching server
such as vLLM: every decode tick produces one token for each running sequence, up to N
sequences (a request of `n` samples is n sequences, scheduled one by one as vLLM does;
more wait in a queue, admitted first come first served as sequences finish). A tick takes
`--tick-ms` plus `--tick-ms-per-seq` per running sequence, plus `--prefill-ms-per-token`
per prompt token (4 characters) of the requests admitted at that tick. Each sequence's length is lognormal: median
`--median-tokens`, sigma `--sigma` (p99/p50 = exp(2.33 sigma)), capped at max_tokens, drawn
from a hash of the body and the sample index. A request is answered when its last sequence
ends. `--ticks FILE` writes one JSON line per listener per second of ticks: decode tokens
produced, busy seconds, the peak rate (N / tick time at N sequences).

`--log FILE` appends one JSON line per answered request (written and flushed when the
answer has been sent): listener, start and end (time.time(), the slot's busy interval),
kind, n, and a hash of the body. `--hang-after N --arm FILE --hung FILE`: once FILE
`--arm` exists, the N-th request after that is never answered, and `--hung` is written
when it arrives (a test then kills the process with that request in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import math
import os
import re
import sys
import time
from collections import deque

PROBLEM = re.compile(r"What is (\d+) plus (\d+)\?")
NAMES = ("Ava", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "June", "Kai", "Lena")


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def prompt_text(body: dict) -> tuple[str, bool]:
    if "messages" in body:
        msgs = body["messages"] or [{}]
        return str(msgs[-1].get("content", "")), True
    return str(body.get("prompt", "")), False


def kind_of(text: str) -> str:
    end = text.rstrip()
    return "solve" if end.endswith("Solution:") else "label" if end.endswith("Skills:") else "mutate"


def mutation(text: str, seed: object, chat: bool) -> str:
    h = _h("mutate", text, seed)
    a, b = 10 + h % 9000, 10 + (h // 9000) % 9000
    name = NAMES[(h // 81_000_000) % len(NAMES)]
    problem = f"{name} asks: What is {a} plus {b}?"
    if chat:
        return f"<problem>{problem}</problem>\n<solution>{a} plus {b} is {a + b}, so \\boxed{{{a + b}}}.</solution>"
    return f" {problem}\nNew solution: {a} plus {b} is {a + b}. The answer is {a + b}.\n###"


def attempts(text: str, n: int) -> list[str]:
    found = PROBLEM.findall(text)
    if not found:
        return [" I do not know. The answer is 0."] * n
    a, b = (int(x) for x in found[-1])  # the last problem in the prompt is the one to solve
    right = _h("rate", a, b) % 5  # solve rate 0, 1/4, 1/2, 3/4 or 1 of the attempts
    out = []
    for i in range(n):
        x = a + b if 4 * i < right * n else a + b + 1 + _h("wrong", a, b, i) % 3
        out.append(f" {a} plus {b} is {x}. The answer is {x}.")
    return out


def pretend_tokens(key: str, text: str, max_tokens: int, spread: bool) -> int:
    """Tokens the answer stands for: its words, or (spread) between max_tokens / 8 and max_tokens."""
    if not spread:
        return max(1, len(text.split()))
    lo = max(1, max_tokens // 8)
    return lo + _h("len", key) % (max_tokens - lo + 1)


def answer(body: dict, spread: bool = False) -> tuple[dict, str, int]:
    """(response JSON, kind, pretend tokens of the longest choice) for one request body."""
    text, chat = prompt_text(body)
    kind = kind_of(text)
    n = max(1, int(body.get("n", 1) or 1))
    if kind == "mutate":
        texts = [mutation(text, body.get("seed"), chat) for _ in range(n)]
    elif kind == "solve":
        texts = attempts(text, n)
    else:
        texts = [""] * n
    max_tokens = int(body.get("max_tokens", 128) or 128)
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    tokens = [pretend_tokens(f"{key}:{i}", t, max_tokens, spread) for i, t in enumerate(texts)]
    choices = [({"message": {"role": "assistant", "content": t}} if chat else {"text": t})
               | {"index": i, "finish_reason": "stop"} for i, t in enumerate(texts)]
    return ({"id": key, "object": "chat.completion" if chat else "text_completion", "choices": choices,
             "usage": {"completion_tokens": sum(tokens)}}, kind, max(tokens))


def lognormal_tokens(key: str, median: float, sigma: float, cap: int) -> int:
    """A sequence length, lognormal(log median, sigma) capped at `cap`, from a hash of `key`."""
    u = (_h("lognormal", key) % 1_000_000 + 0.5) / 1_000_000
    z = math.sqrt(2) * _erfinv(2 * u - 1)
    return max(1, min(cap, round(median * math.exp(sigma * z))))


def _erfinv(y: float) -> float:
    # Newton's method on erf: exact enough for drawing lengths.
    x = 0.0
    for _ in range(60):
        err = math.erf(x) - y
        x -= err / (2 / math.sqrt(math.pi) * math.exp(-x * x))
        if abs(err) < 1e-12:
            break
    return x


class Batcher:
    """One listener as a continuously batching server (see the module doc)."""

    def __init__(self, args: argparse.Namespace, listener: int, ticks_log) -> None:
        self.a, self.listener, self.ticks_log = args, listener, ticks_log
        self.waiting: deque[tuple[int, int, int]] = deque()  # one per sequence: (prefill tokens, length, request)
        self.ends: list[tuple[int, int]] = []  # heap of (tick a sequence ends, request number)
        self.left: dict[int, tuple[int, asyncio.Future]] = {}  # request -> (sequences running, done)
        self.running = 0
        self.tick = 0
        self.seq = 0
        self.wake = asyncio.Event()
        self.window = {"tokens": 0, "busy": 0.0, "t0": time.time()}

    def peak_rate(self) -> float:
        a = self.a
        return a.max_seqs / ((a.tick_ms + a.tick_ms_per_seq * a.max_seqs) / 1000)

    async def run(self, prompt_tokens: int, lengths: list[int]) -> None:
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.seq += 1
        self.left[self.seq] = (len(lengths), done)
        # One entry per sequence (vLLM schedules the samples of a request as separate
        # sequences); the first carries the prompt's prefill, which the others share.
        for i, length in enumerate(lengths):
            self.waiting.append((prompt_tokens if i == 0 else 0, length, self.seq))
        self.wake.set()
        await done

    async def loop(self) -> None:
        a = self.a
        while True:
            if not self.running and not self.waiting:
                self.wake.clear()
                await self.wake.wait()
            prefill = 0
            while self.waiting and self.running < a.max_seqs:
                tokens, length, req = self.waiting.popleft()
                heapq.heappush(self.ends, (self.tick + length, req))  # its first token comes this tick
                self.running += 1
                prefill += tokens
            ms = a.tick_ms + a.tick_ms_per_seq * self.running + a.prefill_ms_per_token * prefill
            started = time.time()
            await asyncio.sleep(ms / 1000)
            self.tick += 1
            self.window["tokens"] += self.running
            self.window["busy"] += time.time() - started
            while self.ends and self.ends[0][0] <= self.tick:
                _, req = heapq.heappop(self.ends)
                n, done = self.left[req]
                self.running -= 1
                if n == 1:
                    del self.left[req]
                    if not done.done():
                        done.set_result(None)
                else:
                    self.left[req] = (n - 1, done)
            self._flush()

    def _flush(self, force: bool = False) -> None:
        now = time.time()
        if self.ticks_log is None or (now - self.window["t0"] < 1.0 and not force):
            return
        self.ticks_log.write(json.dumps({"l": self.listener, "t0": self.window["t0"], "t1": now,
                                         "tokens": self.window["tokens"], "busy": round(self.window["busy"], 4),
                                         "peak_rate": self.peak_rate(), "running": self.running,
                                         "waiting": len(self.waiting), "requests": len(self.left)}) + "\n")
        self.ticks_log.flush()
        self.window = {"tokens": 0, "busy": 0.0, "t0": now}


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
        ticks = open(args.ticks, "a", encoding="utf-8") if args.ticks else None  # noqa: SIM115
        self.batchers = [Batcher(args, i, ticks) for i in range(args.listeners)] if args.max_seqs else []
        self.armed = 0
        self.forever = asyncio.Event()  # never set: a hung request waits on it

    async def serve(self) -> None:
        servers = []
        loops = [asyncio.ensure_future(b.loop()) for b in self.batchers]  # noqa: F841 - run forever
        for i in range(self.args.listeners):
            # A batching listener takes every request (its own queue decides what runs).
            sem = asyncio.Semaphore(1 << 30 if self.args.max_seqs else self.args.capacity)
            srv = await asyncio.start_server(lambda r, w, i=i, s=sem: self.conn(i, s, r, w), "127.0.0.1", 0,
                                             backlog=1024)
            servers.append(srv)
            print(f"URL http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1", flush=True)
        print("READY", flush=True)
        await asyncio.gather(*(s.serve_forever() for s in servers))

    async def conn(self, listener: int, sem: asyncio.Semaphore, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, v in
                           (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                keep = headers.get("connection", "").lower() != "close"
                if method != "POST" or not path.rstrip("/").endswith("completions"):
                    await self.send(writer, 404, b'{"error": "not found"}', keep)
                else:
                    async with sem:
                        await self.handle(listener, json.loads(raw), writer, keep)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def handle(self, listener: int, body: dict, writer: asyncio.StreamWriter, keep: bool) -> None:
        t0 = time.time()
        a = self.args
        if a.arm and os.path.exists(a.arm):
            self.armed += 1
            if self.armed == a.hang_after:
                with open(a.hung, "w", encoding="utf-8") as fh:
                    fh.write(f"{t0}\n")
                await self.forever.wait()
        data, kind, tokens = answer(body, spread=a.ms_per_token > 0)
        if self.batchers:
            cap = int(body.get("max_tokens", 128) or 128)
            lengths = [lognormal_tokens(f"{data['id']}:{i}", a.median_tokens, a.sigma, cap)
                       for i in range(len(data["choices"]))]
            data["usage"]["completion_tokens"] = sum(lengths)
            await self.batchers[listener].run(len(prompt_text(body)[0]) // 4, lengths)
        delay = (a.latency_ms + a.ms_per_token * tokens) / 1000
        if delay > 0 and not self.batchers:
            await asyncio.sleep(delay)
        await self.send(writer, 200, json.dumps(data).encode(), keep)
        if self.log is not None:
            self.log.write(json.dumps({"l": listener, "t0": t0, "t1": time.time(), "kind": kind,
                                       "n": len(data["choices"]), "key": data["id"]}) + "\n")
            self.log.flush()

    @staticmethod
    async def send(writer: asyncio.StreamWriter, status: int, payload: bytes, keep: bool) -> None:
        reason = {200: "OK", 404: "Not Found"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\nConnection: {'keep-alive' if keep else 'close'}\r\n\r\n"
                     .encode() + payload)
        await writer.drain()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listeners", type=int, default=1)
    ap.add_argument("--capacity", type=int, default=1, help="requests served at a time per listener")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="per request")
    ap.add_argument("--ms-per-token", type=float, default=0.0,
                    help="per pretend token of the longest choice (> 0: lengths spread up to max_tokens)")
    ap.add_argument("--max-seqs", type=int, default=0,
                    help="> 0: each listener batches continuously, this many sequences at most")
    ap.add_argument("--tick-ms", type=float, default=20.0, help="continuous batching: per decode tick")
    ap.add_argument("--tick-ms-per-seq", type=float, default=0.1, help="... plus per running sequence")
    ap.add_argument("--prefill-ms-per-token", type=float, default=0.005, help="... plus per admitted prompt token")
    ap.add_argument("--median-tokens", type=float, default=16.0, help="lognormal output length: median")
    ap.add_argument("--sigma", type=float, default=1.0, help="lognormal output length: sigma")
    ap.add_argument("--ticks", default="", help="continuous batching: per-second token log (JSON lines)")
    ap.add_argument("--log", default="")
    ap.add_argument("--arm", default="")
    ap.add_argument("--hang-after", type=int, default=1)
    ap.add_argument("--hung", default="")
    args = ap.parse_args(argv)
    try:
        asyncio.run(Server(args).serve())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
